import { randomBytes } from "node:crypto";
import type { McpSection } from "@lobu/core";
import {
  discoverOAuthServerInfo,
  type OAuthClientProvider,
} from "@modelcontextprotocol/sdk/client/auth.js";
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from "@modelcontextprotocol/sdk/shared/auth.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { McpCredentials } from "./credentials.ts";

/**
 * The SDK's OAuth client port for one person's connection to one server,
 * backed by the encrypted credential store. The SDK's `auth()` does the
 * protocol (RFC 9728 discovery from the 401, RFC 8414 / OpenID metadata, RFC
 * 7591 registration, PKCE S256, RFC 8707 `resource`, refresh); this decides
 * where its state lives and what "redirect the user" means:
 *
 * - `call` mode (a tool call, a tool listing): the person is not at a
 *   browser, so a needed authorization is only noted (`needsAuthorization`)
 *   and the caller shows a connect prompt; no PKCE verifier is kept.
 * - `connect` mode (the person opened a connect link, or the callback):
 *   existing tokens are ignored so a new authorization starts, the verifier
 *   is kept for the callback, and the authorization URL is handed to
 *   `onRedirect` (the route answers with a redirect to it).
 */
export interface PersonOAuthOptions {
  credentials: McpCredentials;
  userKey: string;
  serverId: string;
  server: McpSection;
  /** The gateway's callback (`<public url>/mcp/callback`). */
  redirectUrl: string;
  /** The configured client's secret (an installation secret), when [mcp.<id>] oauth names one. */
  clientSecret?: string;
  mode: { kind: "call" } | { kind: "connect"; state: string; onRedirect(url: URL): void };
}

export class PersonOAuthProvider implements OAuthClientProvider {
  readonly #o: PersonOAuthOptions;
  needsAuthorization = false;

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
    const configured = this.#o.server.oauth;
    if (configured) {
      return {
        client_id: configured.client_id,
        ...(this.#o.clientSecret ? { client_secret: this.#o.clientSecret } : {}),
      };
    }
    return this.#o.credentials.client(this.#o.userKey, this.#o.serverId);
  }

  async saveClientInformation(info: OAuthClientInformationMixed): Promise<void> {
    if (this.#o.server.oauth) return;
    await this.#o.credentials.saveClient(this.#o.userKey, this.#o.serverId, info);
  }

  async tokens(): Promise<OAuthTokens | undefined> {
    // A new connection starts from scratch; the old tokens stay usable until it completes.
    if (this.#o.mode.kind === "connect") return undefined;
    return (await this.#o.credentials.tokens(this.#o.userKey, this.#o.serverId))?.tokens;
  }

  async saveTokens(tokens: OAuthTokens): Promise<void> {
    await this.#o.credentials.saveTokens(this.#o.userKey, this.#o.serverId, tokens);
  }

  redirectToAuthorization(url: URL): void {
    this.needsAuthorization = true;
    if (this.#o.mode.kind === "connect") this.#o.mode.onRedirect(url);
  }

  async saveCodeVerifier(verifier: string): Promise<void> {
    // Only a flow the person is in keeps one: a tool call must not replace theirs.
    if (this.#o.mode.kind !== "connect") return;
    await this.#o.credentials.saveVerifier(this.#o.userKey, this.#o.serverId, verifier);
  }

  async codeVerifier(): Promise<string> {
    const verifier = await this.#o.credentials.verifier(this.#o.userKey, this.#o.serverId);
    if (!verifier) throw new Error("no authorization is in progress for this connection");
    return verifier;
  }

  async invalidateCredentials(
    scope: "all" | "client" | "tokens" | "verifier" | "discovery",
  ): Promise<void> {
    const { credentials, userKey, serverId } = this.#o;
    if (scope === "all")
      await credentials.forget(userKey, serverId, ["tokens", "client", "verifier"]);
    else if (scope === "tokens" || scope === "client" || scope === "verifier")
      await credentials.forget(userKey, serverId, [scope]);
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
