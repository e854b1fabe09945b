import { createHash } from "node:crypto";
import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from "jose";
import type { AudienceCheck } from "../config.ts";

/**
 * Google Chat signs every request to an HTTP endpoint with a bearer token
 * (developers.google.com/workspace/chat/verify-requests-from-chat). With the
 * project-number audience it is a JWT issued by the Chat service account;
 * with the endpoint-URL audience it is a Google ID token whose email is the
 * Chat service account's. Either way: RS256 over Google's published keys,
 * the audience this app was configured with, not expired.
 */

export const CHAT_SERVICE_ACCOUNT = "chat@system.gserviceaccount.com";
const ID_TOKEN_ISSUERS = ["https://accounts.google.com", "accounts.google.com"];
/** Clock difference tolerated on exp/iat. */
const CLOCK_TOLERANCE_SEC = 30;
/** A token longer-lived than this is refused whatever its exp (Google's last an hour). */
const MAX_TOKEN_AGE_SEC = 3_600;
/** Far more than any Google token; anything longer is refused before it is parsed. */
const MAX_TOKEN_CHARS = 4_096;

export type TokenCheck =
  | { ok: true; token: string; expiresAtMs: number }
  | { ok: false; reason: string };

/** What is checked on the header alone: a bearer token of a sensible shape. */
export function bearerOf(
  header: string | undefined,
): { ok: true; token: string } | { ok: false; reason: string } {
  if (!header) return { ok: false, reason: "no Authorization header" };
  const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(header.trim());
  if (!match?.[1]) return { ok: false, reason: "Authorization is not a bearer JWT" };
  if (match[1].length > MAX_TOKEN_CHARS) return { ok: false, reason: "token too long" };
  return { ok: true, token: match[1] };
}

export type ChatTokenVerifier = (token: string) => Promise<TokenCheck>;

/**
 * A verifier for the configured audience mode. Keys are fetched from
 * `certsUrl` (a JWKS) and cached; an unknown key id fetches them again (at
 * most every 30 s), so Google's key rotation needs no restart.
 */
export function chatTokenVerifier(audience: AudienceCheck, certsUrl: string): ChatTokenVerifier {
  const keys = createRemoteJWKSet(new URL(certsUrl), {
    cooldownDuration: 30_000,
    cacheMaxAge: 3_600_000,
  });
  const options = {
    algorithms: ["RS256"],
    requiredClaims: ["exp", "iat", "aud", "iss"],
    clockTolerance: CLOCK_TOLERANCE_SEC,
    maxTokenAge: MAX_TOKEN_AGE_SEC + CLOCK_TOLERANCE_SEC,
    ...(audience.mode === "project-number"
      ? { issuer: CHAT_SERVICE_ACCOUNT, audience: audience.projectNumber }
      : { issuer: ID_TOKEN_ISSUERS, audience: audience.endpointUrl }),
  };
  return async (token) => {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, options));
    } catch (err) {
      return { ok: false, reason: reasonOf(err) };
    }
    // An ID token is Google's for anyone who asks: only one issued to Chat's own account counts.
    if (
      audience.mode === "endpoint-url" &&
      (payload.email !== CHAT_SERVICE_ACCOUNT || payload.email_verified !== true)
    )
      return { ok: false, reason: "ID token not issued to the Chat service account" };
    return { ok: true, token, expiresAtMs: (payload.exp as number) * 1000 };
  };
}

function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "token expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim "${err.claim}" refused`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return "bad signature";
  if (err instanceof errors.JWKSNoMatchingKey) return "signed with a key Google did not publish";
  if (err instanceof errors.JOSEAlgNotAllowed) return "algorithm not allowed";
  if (err instanceof errors.JWKSTimeout)
    return "Google's signing keys could not be fetched in time";
  if (err instanceof errors.JOSEError) return `token refused (${err.code})`;
  // Anything else is the key fetch failing (network, DNS): say so, the token may be fine.
  return `Google's signing keys could not be fetched (${(err as Error).name})`;
}

/**
 * What a captured request cannot be sent again under: its token and body
 * together (a redelivered event comes with a token of its own). The token's
 * signature counts by its bytes, not its spelling: base64url's last character
 * carries unused bits the verifier ignores, so one signature has several
 * spellings, and each would otherwise be a "new" request.
 */
export function requestDigest(token: string, body: Uint8Array): string {
  const [header = "", payload = "", signature = ""] = token.split(".");
  const canonical = `${header}.${payload}.${Buffer.from(signature, "base64url").toString("base64url")}`;
  return createHash("sha256").update(canonical).update("\n").update(body).digest("hex");
}
