import { createHmac } from "node:crypto";
import type { SlackForgery } from "./types.ts";

/** Slack's v0 request signature: "v0=" + hex HMAC-SHA256 of "v0:<ts>:<raw body>". */
export function slackSignature(
  secret: string,
  timestamp: number | string,
  rawBody: string,
): string {
  const digest = createHmac("sha256", secret).update(`v0:${timestamp}:${rawBody}`).digest("hex");
  return `v0=${digest}`;
}

/** The signature headers for a request body, honouring any forgery the test asked for. */
export function signatureHeaders(
  secret: string,
  rawBody: string,
  forge: SlackForgery = {},
): Record<string, string> {
  const now = Math.floor(Date.now() / 1000);
  const timestamp = forge.timestamp ?? now - (forge.staleBySec ?? 0);
  const headers: Record<string, string> = {};
  if (!forge.omitTimestamp) headers["X-Slack-Request-Timestamp"] = String(timestamp);
  if (!forge.omitSignature) {
    headers["X-Slack-Signature"] =
      forge.signature ?? slackSignature(forge.secret ?? secret, timestamp, rawBody);
  }
  return headers;
}
