import { createPublicKey, type KeyObject, verify } from "node:crypto";

/** Discord refuses nothing older, but we do: a signed interaction older than five minutes is a replay. */
export const MAX_SKEW_SEC = 300;
/** How long an accepted signature is remembered (a copy within the skew is refused). */
export const SIGNATURE_MEMORY_MS = (2 * MAX_SKEW_SEC + 60) * 1000;

type Check = { ok: true } | { ok: false; reason: string };

export interface SignatureHeaders {
  signature: string | undefined;
  timestamp: string | undefined;
}

/** The application's public key (hex, as the developer portal shows it) as a key object. */
export function publicKeyOf(hex: string): KeyObject {
  return createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(hex, "hex").toString("base64url") },
    format: "jwk",
  });
}

/** What can be checked before the body is read: both headers, well formed, a fresh timestamp. */
export function checkSignatureHeaders(
  headers: SignatureHeaders,
  nowSec = Math.floor(Date.now() / 1000),
): Check {
  const { signature, timestamp } = headers;
  if (!signature || !timestamp) return { ok: false, reason: "missing signature headers" };
  if (!/^[0-9a-f]{128}$/i.test(signature)) return { ok: false, reason: "malformed signature" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "malformed timestamp" };
  if (Math.abs(nowSec - Number(timestamp)) > MAX_SKEW_SEC)
    return { ok: false, reason: "stale timestamp" };
  return { ok: true };
}

/**
 * Discord signs every interaction: X-Signature-Ed25519 is the Ed25519
 * signature of X-Signature-Timestamp followed by the raw body, made with
 * the application's private key.
 */
export function verifyInteraction(
  key: KeyObject,
  headers: SignatureHeaders,
  rawBody: Uint8Array,
  nowSec = Math.floor(Date.now() / 1000),
): Check {
  const early = checkSignatureHeaders(headers, nowSec);
  if (!early.ok) return early;
  const message = Buffer.concat([Buffer.from(headers.timestamp as string), rawBody]);
  let valid = false;
  try {
    valid = verify(null, message, key, Buffer.from(headers.signature as string, "hex"));
  } catch {
    valid = false;
  }
  return valid ? { ok: true } : { ok: false, reason: "bad signature" };
}
