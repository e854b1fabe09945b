import { randomBytes } from "node:crypto";
import type { McpSection } from "@lobu/core";
import {
  discoverOAuthServerInfo,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
  UnauthorizedError,
} from "@modelcontextprotocol/sdk/client/auth.js";
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from "@modelcontextprotocol/sdk/shared/auth.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { FlowSecrets } from "./connect-flows.ts";
import type { McpCredentials } from "./credentials.ts";

/**
 * The SDK's OAuth client port for one person's connection to one server,
 * backed by the encrypted credential store. The SDK's `auth()` does the
 * protocol (RFC 9728 discovery from the 401, RFC 8414 / OpenID metadata, RFC
 * 7591 registration, PKCE S256, RFC 8707 `resource`, refresh); this decides
 * where its state lives and what "redirect the user" means:
 *
 * - `call` mode (a tool call, a tool listing, the settings page's status):
 *   the person is not at a browser, so a needed authorization is only noted
 *   (`needsAuthorization`) and the caller shows a connect prompt. It uses the
 *   client the person's tokens were issued to and never registers one: with
 *   none, the person needs to connect.
 * - `connect` mode (the person opened a connect link): existing tokens are
 *   ignored so a new authorization starts; the client is the server's shared
 *   registration (one per server, authorization server and redirect URI, for
 *   everyone), registered now if there is none; the verifier, the client and
 *   the discovery are collected in `started` for the flow record, and the
 *   authorization URL is handed to `onRedirect`.
 * - `callback` mode: the code is exchanged with what the flow's start left
 *   (its verifier, its client, its discovery).
 */
export type OAuthMode =
  | { kind: "call" }
  | { kind: "connect"; state: string; onRedirect(url: URL): void }
  | { kind: "callback"; secrets: FlowSecrets };

export interface PersonOAuthOptions {
  credentials: McpCredentials;
  userKey: string;
  serverId: string;
  server: McpSection;
  /** The gateway's callback (`<public url>/mcp/callback`). */
  redirectUrl: string;
  /** The configured client's secret (an installation secret), when [mcp.<id>] oauth names one. */
  clientSecret?: string;
  mode: OAuthMode;
}

export class PersonOAuthProvider implements OAuthClientProvider {
  readonly #o: PersonOAuthOptions;
  needsAuthorization = false;
  /** What a `connect` flow's start collected, for its callback. */
  readonly started: Partial<FlowSecrets> = {};

  constructor(opts: PersonOAuthOptions) {
    this.#o = opts;
  }

  get redirectUrl(): string {
    return this.#o.redirectUrl;
  }

  get clientMetadata(): OAuthClientMetadata {
    const scopes = this.#o.server.oauth?.scopes ?? [];
    return {
      client_name: "Lobu",
      redirect_uris: [this.#o.redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      // The gateway is a server: it can keep a client secret, and revoking needs one.
      token_endpoint_auth_method: "client_secret_basic",
      ...(scopes.length > 0 ? { scope: scopes.join(" ") } : {}),
    };
  }

  state(): string {
    return this.#o.mode.kind === "connect" ? this.#o.mode.state : randomBytes(16).toString("hex");
  }

  async clientInformation(): Promise<OAuthClientInformationMixed | undefined> {
    const { mode, server, credentials, userKey, serverId, redirectUrl } = this.#o;
    if (server.oauth) {
      const configured = {
        client_id: server.oauth.client_id,
        ...(this.#o.clientSecret ? { client_secret: this.#o.clientSecret } : {}),
      };
      if (mode.kind === "connect") this.started.client = configured;
      return configured;
    }
    if (mode.kind === "callback") return mode.secrets.client as OAuthClientInformationMixed;
    if (mode.kind === "connect") {
      const shared = await credentials.sharedClient(serverId, redirectUrl);
      if (shared) this.started.client = shared;
      return shared;
    }
    const own = await credentials.client(userKey, serverId);
    if (!own) {
      // Registering is for a flow the person starts, not for a listing or a page view.
      this.needsAuthorization = true;
      throw new NotConnected(serverId);
    }
    return own;
  }

  async saveClientInformation(info: OAuthClientInformationMixed): Promise<void> {
    const { mode, server, credentials, userKey, serverId, redirectUrl } = this.#o;
    if (server.oauth || mode.kind === "callback") return;
    if (mode.kind === "connect") {
      this.started.client = info;
      await credentials.saveSharedClient(serverId, redirectUrl, info);
    } else await credentials.saveClient(userKey, serverId, info);
  }

  async tokens(): Promise<OAuthTokens | undefined> {
    // A new connection starts from scratch; the old tokens stay usable until it completes.
    if (this.#o.mode.kind !== "call") return undefined;
    return (await this.#o.credentials.tokens(this.#o.userKey, this.#o.serverId))?.tokens;
  }

  async saveTokens(tokens: OAuthTokens): Promise<void> {
    await this.#o.credentials.saveTokens(this.#o.userKey, this.#o.serverId, tokens);
  }

  redirectToAuthorization(url: URL): void {
    this.needsAuthorization = true;
    if (this.#o.mode.kind === "connect") this.#o.mode.onRedirect(url);
  }

  saveCodeVerifier(verifier: string): void {
    // Only a flow the person is in keeps one, in its own record.
    if (this.#o.mode.kind === "connect") this.started.verifier = verifier;
  }

  codeVerifier(): string {
    if (this.#o.mode.kind !== "callback")
      throw new Error("no authorization is in progress for this connection");
    return this.#o.mode.secrets.verifier;
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.#o.mode.kind === "callback"
      ? (this.#o.mode.secrets.discovery as OAuthDiscoveryState | undefined)
      : undefined;
  }

  saveDiscoveryState(state: OAuthDiscoveryState): void {
    if (this.#o.mode.kind === "connect")
      this.started.discovery = JSON.parse(JSON.stringify(state)) as FlowSecrets["discovery"];
  }

  async invalidateCredentials(
    scope: "all" | "client" | "tokens" | "verifier" | "discovery",
  ): Promise<void> {
    const { credentials, userKey, serverId, redirectUrl, mode, server } = this.#o;
    // The person's tokens are a call's to drop: a new flow leaves them usable until it completes.
    if (mode.kind === "call" && (scope === "all" || scope === "tokens"))
      await credentials.forget(userKey, serverId, ["tokens"]);
    if ((scope === "all" || scope === "client") && !server.oauth) {
      // The authorization server refused the client: the one this mode uses is gone.
      if (mode.kind === "call") await credentials.forget(userKey, serverId, ["client"]);
      else if (mode.kind === "connect") await credentials.forgetSharedClient(serverId, redirectUrl);
    }
  }
}

/**
 * A call-mode provider found no client: the person has not connected (and
 * nothing is registered). The SDK's UnauthorizedError, so every caller reads
 * it as "needs authorization".
 */
export class NotConnected extends UnauthorizedError {
  constructor(serverId: string) {
    super(`connect your account to ${serverId} first`);
    this.name = "NotConnected";
  }
}

/**
 * Revoke a person's tokens at the server's authorization server (RFC 7009),
 * refresh token first (revoking it revokes the grant at most servers). Best
 * effort: a server without a revocation endpoint, or one that fails, leaves
 * the tokens to expire; the gateway forgets them either way.
 */
export async function revokeTokens(opts: {
  serverUrl: string;
  tokens: OAuthTokens;
  client: OAuthClientInformationMixed | undefined;
  fetchFn: FetchLike;
}): Promise<boolean> {
  const info = await discoverOAuthServerInfo(opts.serverUrl, { fetchFn: opts.fetchFn });
  const endpoint = (
    info.authorizationServerMetadata as { revocation_endpoint?: string } | undefined
  )?.revocation_endpoint;
  if (!endpoint || !opts.client) return false;
  let all = true;
  const tokens: [string, string][] = [];
  if (opts.tokens.refresh_token) tokens.push([opts.tokens.refresh_token, "refresh_token"]);
  tokens.push([opts.tokens.access_token, "access_token"]);
  for (const [token, hint] of tokens) {
    const body = new URLSearchParams({ token, token_type_hint: hint });
    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
    };
    if (opts.client.client_secret) {
      const basic = `${encodeURIComponent(opts.client.client_id)}:${encodeURIComponent(opts.client.client_secret)}`;
      headers.authorization = `Basic ${Buffer.from(basic).toString("base64")}`;
    } else body.set("client_id", opts.client.client_id);
    const res = await opts.fetchFn(endpoint, { method: "POST", headers, body });
    await res.body?.cancel();
    if (!res.ok) all = false;
  }
  return all;
}
