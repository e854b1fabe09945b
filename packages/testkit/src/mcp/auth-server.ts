import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Provider, { type Adapter, type AdapterPayload, errors } from "oidc-provider";

/**
 * A real OAuth 2.1 authorization server for tests: `oidc-provider`
 * configured the way an MCP server's authorization server is (dynamic
 * client registration, PKCE required, resource indicators with opaque access
 * tokens, refresh tokens, revocation, introspection for the resource server).
 *
 * Login and consent are this emulator's own interaction pages: a form that
 * takes the account to sign in as (`account`), which a test's browser (see
 * browser.ts) fills in. `expireAccessTokens` and `revokeAccount` act on the
 * stored tokens, as time passing or a person revoking the app at the
 * provider would.
 */
export interface AuthServer {
  issuer: string;
  /** The resource server's client, for token introspection. */
  introspection: { url: string; clientId: string; clientSecret: string };
  /** Access tokens issued so far (for tests that check they went nowhere else). */
  readonly issuedTokens: string[];
  /** Clients registered (RFC 7591) so far. */
  readonly registrations: number;
  /** The client each access token was issued to, in order. */
  readonly tokenClients: string[];
  /** A client registered ahead of time, as an operator does at a provider without RFC 7591. */
  registerClient(client: {
    clientId: string;
    clientSecret: string;
    redirectUri: string;
  }): Promise<void>;
  /** Token revocations (RFC 7009) received. */
  readonly revocations: number;
  /** Make every access token expire (a refresh token still works). */
  expireAccessTokens(): Promise<void>;
  /** Everything issued to this account is revoked (it must sign in again). */
  revokeAccount(accountId: string): Promise<void>;
  close(): Promise<void>;
}

const RESOURCE_SCOPES = "notes";

/** The store oidc-provider keeps its models in: a Map per model, visible to the controls above. */
class MemoryStore {
  readonly models = new Map<string, Map<string, { payload: AdapterPayload; expiresAt?: number }>>();

  adapter(name: string): Adapter {
    let table = this.models.get(name);
    if (!table) {
      table = new Map();
      this.models.set(name, table);
    }
    const t = table;
    const live = (id: string) => {
      const e = t.get(id);
      if (!e) return undefined;
      if (e.expiresAt && e.expiresAt < Date.now()) {
        t.delete(id);
        return undefined;
      }
      return e.payload;
    };
    return {
      upsert: async (id, payload, expiresIn) => {
        t.set(id, { payload, ...(expiresIn ? { expiresAt: Date.now() + expiresIn * 1000 } : {}) });
      },
      find: async (id) => live(id),
      findByUserCode: async () => undefined,
      findByUid: async (uid) => {
        for (const [id, e] of t) if (e.payload.uid === uid) return live(id);
        return undefined;
      },
      consume: async (id) => {
        const e = t.get(id);
        if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
      },
      destroy: async (id) => {
        t.delete(id);
      },
      revokeByGrantId: async (grantId) => {
        for (const table of this.models.values())
          for (const [id, e] of table) if (e.payload.grantId === grantId) table.delete(id);
      },
    };
  }
}

export async function startAuthServer(opts: { resource: () => string }): Promise<AuthServer> {
  const store = new MemoryStore();
  const issuedTokens: string[] = [];
  const tokenClients: string[] = [];
  let registrations = 0;
  let revocations = 0;
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const rs = { clientId: "notes-resource-server", clientSecret: randomBytes(24).toString("hex") };
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    adapter: (name: string) => store.adapter(name),
    jwks: {
      keys: [{ ...privateKey.export({ format: "jwk" }), kid: "k1", alg: "RS256", use: "sig" }],
    },
    cookies: { keys: [randomBytes(32).toString("hex")] },
    clients: [
      {
        client_id: rs.clientId,
        client_secret: rs.clientSecret,
        grant_types: [],
        redirect_uris: [],
        response_types: [],
      },
    ],
    scopes: ["openid", "offline_access", RESOURCE_SCOPES],
    // Every account exists: the sign-in form names it.
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      // The resource server (a confidential client) may introspect every token.
      introspection: { enabled: true, allowedPolicy: async () => true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => opts.resource(),
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (indicator !== opts.resource()) throw new errors.InvalidTarget();
          return { scope: RESOURCE_SCOPES, accessTokenFormat: "opaque", audience: indicator };
        },
      },
    },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: 3600,
      RefreshToken: 86_400,
      Grant: 86_400,
      Interaction: 600,
      Session: 3600,
    },
  });
  provider.on("access_token.saved", (token) => {
    issuedTokens.push(token.jti);
    tokenClients.push(token.clientId ?? "");
  });
  const callback = provider.callback();
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", issuer).pathname;
    if (req.method === "POST" && path === "/reg") registrations++;
    if (req.method === "POST" && path === "/token/revocation") revocations++;
    if (path.startsWith("/interaction/")) {
      void interaction(provider, req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
      return;
    }
    callback(req, res);
  });
  return {
    issuer,
    introspection: { url: `${issuer}/token/introspection`, ...rs },
    issuedTokens,
    tokenClients,
    async registerClient({ clientId, clientSecret, redirectUri }) {
      await store.adapter("Client").upsert(clientId, {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      });
    },
    get registrations() {
      return registrations;
    },
    get revocations() {
      return revocations;
    },
    async expireAccessTokens() {
      store.models.get("AccessToken")?.clear();
    },
    async revokeAccount(accountId) {
      for (const table of store.models.values())
        for (const [id, e] of table) if (e.payload.accountId === accountId) table.delete(id);
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** The login and consent page: GET shows the form, POST signs in as `account` and consents. */
async function interaction(provider: Provider, req: IncomingMessage, res: ServerResponse) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === "GET") {
    res.setHeader("content-type", "text/html");
    res.end(
      `<form method="post" action="/interaction/${details.uid}"><input name="account"><button>Sign in</button> (${details.prompt.name})</form>`,
    );
    return;
  }
  const body = new URLSearchParams(await readBody(req));
  const prompt = details.prompt;
  if (prompt.name === "login") {
    const accountId = body.get("account");
    if (!accountId) throw new Error("no account");
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId } },
      {
        mergeWithLastSubmission: false,
      },
    );
    return;
  }
  const accountId = details.session?.accountId;
  if (!accountId) throw new Error("no session");
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: String(details.params.client_id) });
  if (!grant) throw new Error("no grant");
  const missing = prompt.details as {
    missingOIDCScope?: string[];
    missingOIDCClaims?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {}))
    grant.addResourceScope(indicator, scopes.join(" "));
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { consent: { grantId } },
    {
      mergeWithLastSubmission: true,
    },
  );
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new Error("body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
