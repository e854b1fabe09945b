import { createHmac, timingSafeEqual } from "node:crypto";

/** Slack refuses requests older than five minutes; so do we (replay protection). */
export const MAX_SKEW_SEC = 300;

/**
 * How long an accepted signature is remembered so a copy of the request is
 * refused: a timestamp may be up to MAX_SKEW_SEC in the future and is then
 * accepted for MAX_SKEW_SEC more, plus a minute of margin.
 */
export const SIGNATURE_MEMORY_MS = (2 * MAX_SKEW_SEC + 60) * 1000;

export interface SignatureHeaders {
  timestamp: string | undefined;
  signature: string | undefined;
}

type Check = { ok: true } | { ok: false; reason: string };

/**
 * What can be checked before the body is read: both headers present, a
 * well-formed signature, a timestamp within five minutes of now. A request
 * that fails here is refused without reading its body.
 */
export function checkSignatureHeaders(
  headers: SignatureHeaders,
  nowSec = Math.floor(Date.now() / 1000),
): Check {
  const { timestamp, signature } = headers;
  if (!timestamp || !signature) return { ok: false, reason: "missing signature headers" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "malformed timestamp" };
  if (!/^v0=[0-9a-f]{64}$/.test(signature)) return { ok: false, reason: "bad signature" };
  if (Math.abs(nowSec - Number(timestamp)) > MAX_SKEW_SEC)
    return { ok: false, reason: "stale timestamp" };
  return { ok: true };
}

/**
 * Check Slack's v0 request signature: "v0=" + hex HMAC-SHA256(signing secret,
 * "v0:<timestamp>:<raw body>"), compared in constant time, with the timestamp
 * within five minutes of now.
 */
export function verifySlackSignature(
  signingSecret: string,
  headers: SignatureHeaders,
  rawBody: string,
  nowSec = Math.floor(Date.now() / 1000),
): Check {
  const early = checkSignatureHeaders(headers, nowSec);
  if (!early.ok) return early;
  const expected = Buffer.from(
    `v0=${createHmac("sha256", signingSecret).update(`v0:${headers.timestamp}:${rawBody}`).digest("hex")}`,
  );
  const given = Buffer.from(headers.signature as string);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: "bad signature" };
  return { ok: true };
}
