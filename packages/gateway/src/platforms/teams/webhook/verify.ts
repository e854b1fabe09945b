import { decodeProtectedHeader, importJWK, type JWK, jwtVerify } from "jose";
import { z } from "zod";
import { BOT_FRAMEWORK_ISSUER } from "../config.ts";

/**
 * The Bot Framework connector signs every activity it posts to a bot with a
 * JWT in `Authorization: Bearer`: issued by https://api.botframework.com,
 * for the bot's app id, signed with a key published in the OpenID metadata's
 * JWKS whose `endorsements` name the channel ("msteams"), and carrying the
 * `serviceurl` the activity names. The checks are Microsoft's (Bot Framework
 * "Authenticate requests from the Bot Connector service"), made with `jose`
 * against a configurable metadata URL.
 */

export type TokenCheck =
  | { ok: true; claims: Record<string, unknown> }
  | { ok: false; reason: string };

/** Five minutes either way, as the Bot Framework SDKs allow. */
export const CLOCK_SKEW_SEC = 300;
const ALGORITHMS = ["RS256", "RS384", "RS512"];
/** Keys are refreshed daily; an unknown key id refreshes them at most this often. */
const KEYS_TTL_MS = 24 * 3_600_000;
const REFRESH_MIN_MS = 5 * 60_000;

const Metadata = z.object({ issuer: z.string().optional(), jwks_uri: z.url() });
const Jwks = z.object({
  keys: z
    .array(
      z
        .object({
          kid: z.string().max(256).optional(),
          endorsements: z.array(z.string().max(64)).max(64).optional(),
        })
        .loose(),
    )
    .max(100),
});

interface Key {
  jwk: JWK;
  endorsements: string[];
}

/** The Bot Framework's signing keys, read from its OpenID metadata and kept a day. */
export class BotFrameworkKeys {
  readonly #metadataUrl: string;
  readonly #fetch: typeof fetch;
  #keys = new Map<string, Key>();
  #loadedAt = 0;
  #loading: Promise<void> | undefined;

  constructor(metadataUrl: string, fetchImpl: typeof fetch = fetch) {
    this.#metadataUrl = metadataUrl;
    this.#fetch = fetchImpl;
  }

  /** The key `kid`, or undefined when the metadata does not publish it. */
  async key(kid: string): Promise<Key | undefined> {
    const age = Date.now() - this.#loadedAt;
    if (age > KEYS_TTL_MS || (!this.#keys.has(kid) && age > REFRESH_MIN_MS)) await this.#load();
    return this.#keys.get(kid);
  }

  #load(): Promise<void> {
    this.#loading ??= this.#fetchKeys().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #fetchKeys(): Promise<void> {
    const meta = Metadata.parse(await this.#json(this.#metadataUrl));
    const jwksUrl = new URL(meta.jwks_uri);
    // The keys come from where the metadata says, over https unless the metadata itself is local http.
    if (jwksUrl.protocol !== "https:" && jwksUrl.origin !== new URL(this.#metadataUrl).origin)
      throw new Error("the OpenID metadata names a jwks_uri that is not https");
    const jwks = Jwks.parse(await this.#json(jwksUrl.href));
    const keys = new Map<string, Key>();
    for (const k of jwks.keys)
      if (k.kid) keys.set(k.kid, { jwk: k as JWK, endorsements: k.endorsements ?? [] });
    this.#keys = keys;
    this.#loadedAt = Date.now();
  }

  async #json(url: string): Promise<unknown> {
    const res = await this.#fetch(url, { redirect: "error", signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
    return res.json();
  }
}

/** What can be checked before the body is read: a bearer token is there. */
export function bearerOf(header: string | undefined): string | undefined {
  const m = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(header ?? "");
  return m?.[1];
}

/** A token whose signature, issuer, audience and expiry are good; what it vouches for is checked next. */
export interface VerifiedToken {
  claims: Record<string, unknown>;
  /** The channels the signing key is endorsed for. */
  endorsements: string[];
}

/**
 * Verify a connector token on its own (the header, before the body is
 * read): signed with a published key, issuer, audience (the app id), expiry
 * within the clock skew.
 */
export async function verifyBotToken(
  token: string,
  deps: { keys: BotFrameworkKeys; appId: string; now?: () => number },
): Promise<({ ok: true } & VerifiedToken) | { ok: false; reason: string }> {
  let kid: string | undefined;
  let alg: string | undefined;
  try {
    ({ kid, alg } = decodeProtectedHeader(token));
  } catch {
    return { ok: false, reason: "the token is not a JWT" };
  }
  if (!alg || !ALGORITHMS.includes(alg)) return { ok: false, reason: `algorithm ${alg} refused` };
  if (!kid) return { ok: false, reason: "the token names no key" };
  const key = await deps.keys.key(kid);
  if (!key)
    return {
      ok: false,
      reason: "the token is signed with a key the Bot Framework does not publish",
    };
  try {
    const verified = await jwtVerify(token, await importJWK(key.jwk, alg), {
      issuer: BOT_FRAMEWORK_ISSUER,
      audience: deps.appId,
      algorithms: ALGORITHMS,
      clockTolerance: CLOCK_SKEW_SEC,
      requiredClaims: ["exp"],
      ...(deps.now ? { currentDate: new Date(deps.now()) } : {}),
    });
    return { ok: true, claims: verified.payload, endorsements: key.endorsements };
  } catch (err) {
    return { ok: false, reason: `the token is not valid: ${(err as Error).message}` };
  }
}

/**
 * What the token vouches for, against the activity: the signing key is
 * endorsed for its channel, and the token's `serviceurl` is its serviceUrl
 * (so nobody can point the bot, and its token, somewhere else).
 */
export function checkActivity(
  token: VerifiedToken,
  activity: { serviceUrl: string; channelId: string },
): TokenCheck {
  if (!token.endorsements.includes(activity.channelId))
    return {
      ok: false,
      reason: `the signing key is not endorsed for channel ${activity.channelId}`,
    };
  if (token.claims.serviceurl !== activity.serviceUrl)
    return { ok: false, reason: "the token's serviceurl is not the activity's serviceUrl" };
  return { ok: true, claims: token.claims };
}

/** Both checks, for an activity already read. */
export async function verifyActivityToken(
  token: string,
  activity: { serviceUrl: string; channelId: string },
  deps: { keys: BotFrameworkKeys; appId: string; now?: () => number },
): Promise<TokenCheck> {
  const verified = await verifyBotToken(token, deps);
  return verified.ok ? checkActivity(verified, activity) : verified;
}
