import type { IdentitySection } from "@lobu/core";
import { LobuError } from "@lobu/core";
import * as oauth from "oauth4webapi";
import { z } from "zod";
import type { KeyValue } from "../store/port.ts";

type OidcConfig = NonNullable<IdentitySection["oidc"]>;

/** How long a started sign-in may take (the person types a password, maybe a second factor). */
const PENDING_TTL_MS = 10 * 60_000;

const Pending = z.object({ userKey: z.string(), verifier: z.string(), nonce: z.string() });

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

function failed(message: string, cause?: unknown): LobuError {
  return new LobuError("oidc_failed", message, {
    status: 400,
    hint: "Start again with “Sign in” under Linked accounts on your settings page.",
    ...(cause ? { cause } : {}),
  });
}

/**
 * Sign-in with the team's OpenID Connect provider, to prove which person an
 * identity belongs to (docs/identity.md): authorization code flow with PKCE,
 * `state` and `nonce`, through oauth4webapi. A started sign-in is bound to
 * the identity (the settings session) that started it and is single-use; the
 * callback must come in that same session, so a sign-in started by someone
 * else and finished in a victim's browser links nothing.
 */
export class OidcSignIn {
  readonly #config: OidcConfig;
  readonly #kv: KeyValue;
  readonly #secret: string | undefined;
  #server: Promise<oauth.AuthorizationServer> | undefined;

  constructor(config: OidcConfig, kv: KeyValue, env: NodeJS.ProcessEnv = process.env) {
    this.#config = config;
    this.#kv = kv;
    this.#secret = config.client_secret ?? env.LOBU_OIDC_CLIENT_SECRET;
  }

  get name(): string {
    return this.#config.name;
  }

  /** The provider's authorization URL for `userKey`'s sign-in. */
  async start(userKey: string, redirectUri: string): Promise<string> {
    const as = await this.#discover();
    if (!as.authorization_endpoint)
      throw failed("the OpenID provider has no authorization endpoint");
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    await this.#kv.set(`link:oidc-pending:${state}`, JSON.stringify({ userKey, verifier, nonce }), {
      ttlMs: PENDING_TTL_MS,
    });
    const url = new URL(as.authorization_endpoint);
    url.searchParams.set("client_id", this.#config.client_id);
    url.searchParams.set("redirect_uri", redirectUri);
    url.searchParams.set("response_type", "code");
    url.searchParams.set("scope", "openid");
    url.searchParams.set("state", state);
    url.searchParams.set("nonce", nonce);
    url.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(verifier));
    url.searchParams.set("code_challenge_method", "S256");
    return url.href;
  }

  /**
   * Finish a sign-in: the callback URL's code exchanged and its ID token
   * checked. Returns the subject (`issuer` and `sub`) for `userKey`, which
   * must be the identity that started it.
   */
  async finish(userKey: string, callback: URL, redirectUri: string): Promise<string> {
    const state = callback.searchParams.get("state") ?? "";
    const raw = state ? await this.#kv.take(`link:oidc-pending:${state}`) : null;
    const pending = raw === null ? undefined : Pending.safeParse(parseJson(raw));
    if (!pending?.success) throw failed("this sign-in is unknown, used or expired");
    if (pending.data.userKey !== userKey)
      throw failed("this sign-in was started by another account");
    const as = await this.#discover();
    const client: oauth.Client = { client_id: this.#config.client_id };
    const auth = this.#secret ? oauth.ClientSecretPost(this.#secret) : oauth.None();
    try {
      const params = oauth.validateAuthResponse(as, client, callback, state);
      const response = await oauth.authorizationCodeGrantRequest(
        as,
        client,
        auth,
        params,
        redirectUri,
        pending.data.verifier,
        this.#options(),
      );
      const result = await oauth.processAuthorizationCodeResponse(as, client, response, {
        expectedNonce: pending.data.nonce,
        requireIdToken: true,
      });
      const claims = oauth.getValidatedIdTokenClaims(result);
      if (!claims?.sub) throw failed("the OpenID provider returned no subject");
      return `${as.issuer}\n${claims.sub}`;
    } catch (err) {
      if (err instanceof LobuError) throw err;
      throw failed("the OpenID provider did not confirm the sign-in", err);
    }
  }

  #discover(): Promise<oauth.AuthorizationServer> {
    this.#server ??= (async () => {
      const issuer = new URL(this.#config.issuer);
      const res = await oauth.discoveryRequest(issuer, { algorithm: "oidc", ...this.#options() });
      return oauth.processDiscoveryResponse(issuer, res);
    })().catch((err: unknown) => {
      this.#server = undefined;
      throw new LobuError("oidc_failed", "the OpenID provider could not be reached", {
        status: 502,
        hint: "Check [identity.oidc] issuer in lobu.toml, then try again.",
        cause: err,
      });
    });
    return this.#server;
  }

  /** Plain HTTP only for a provider on this machine (development, tests). */
  #options(): { [oauth.allowInsecureRequests]?: boolean } {
    const { protocol, hostname } = new URL(this.#config.issuer);
    const loopback = hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
    return protocol === "http:" && loopback ? { [oauth.allowInsecureRequests]: true } : {};
  }
}
