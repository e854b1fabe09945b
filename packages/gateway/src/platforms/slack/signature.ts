import { createHmac, timingSafeEqual } from "node:crypto";

/** Slack refuses requests older than five minutes; so do we (replay protection). */
export const MAX_SKEW_SEC = 300;

/**
 * Check Slack's v0 request signature: "v0=" + hex HMAC-SHA256(signing secret,
 * "v0:<timestamp>:<raw body>"), compared in constant time, with the timestamp
 * within five minutes of now.
 */
export function verifySlackSignature(
  signingSecret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  rawBody: string,
  nowSec = Math.floor(Date.now() / 1000),
): { ok: true } | { ok: false; reason: string } {
  const { timestamp, signature } = headers;
  if (!timestamp || !signature) return { ok: false, reason: "missing signature headers" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "malformed timestamp" };
  if (Math.abs(nowSec - Number(timestamp)) > MAX_SKEW_SEC)
    return { ok: false, reason: "stale timestamp" };
  const expected = Buffer.from(
    `v0=${createHmac("sha256", signingSecret).update(`v0:${timestamp}:${rawBody}`).digest("hex")}`,
  );
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: "bad signature" };
  return { ok: true };
}
