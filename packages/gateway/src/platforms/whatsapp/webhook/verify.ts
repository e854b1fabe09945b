import { createHmac, timingSafeEqual } from "node:crypto";
import { safeEqual } from "../../../util/safe-equal.ts";

type Check = { ok: true } | { ok: false; reason: string };

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

/**
 * What can be checked before the body is read: X-Hub-Signature-256 is there
 * and well formed. A delivery that fails here is refused unread.
 */
export function checkSignatureHeader(header: string | undefined): Check {
  if (!header) return { ok: false, reason: "missing X-Hub-Signature-256" };
  if (!SIGNATURE.test(header)) return { ok: false, reason: "malformed X-Hub-Signature-256" };
  return { ok: true };
}

/**
 * Meta signs every webhook delivery: X-Hub-Signature-256 is "sha256=" + the
 * hex HMAC-SHA256 of the raw body (its exact bytes) keyed with the app
 * secret. Compared in constant time.
 */
export function verifyHubSignature(
  appSecret: string,
  header: string | undefined,
  rawBody: Uint8Array,
): Check {
  const early = checkSignatureHeader(header);
  if (!early.ok) return early;
  const expected = Buffer.from(
    `sha256=${createHmac("sha256", appSecret).update(rawBody).digest("hex")}`,
  );
  const given = Buffer.from(header as string);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: "bad signature" };
  return { ok: true };
}

/**
 * The verification handshake Meta makes when the webhook is set up: GET with
 * hub.mode=subscribe, the verify token entered in the app dashboard and a
 * challenge to echo. Returns the challenge to answer with, or why not.
 */
export function verificationChallenge(
  query: { mode?: string; token?: string; challenge?: string },
  verifyToken: string,
): { ok: true; challenge: string } | { ok: false; reason: string } {
  if (query.mode !== "subscribe") return { ok: false, reason: "hub.mode is not subscribe" };
  if (!safeEqual(query.token ?? "", verifyToken))
    return { ok: false, reason: "hub.verify_token does not match WHATSAPP_VERIFY_TOKEN" };
  // Meta's challenge is a number; anything else is echoed nowhere (no reflected content).
  if (!query.challenge || !/^[0-9A-Za-z_-]{1,128}$/.test(query.challenge))
    return { ok: false, reason: "hub.challenge is missing or malformed" };
  return { ok: true, challenge: query.challenge };
}
