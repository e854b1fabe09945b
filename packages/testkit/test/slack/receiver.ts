import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  verified: boolean;
  reason?: string;
}

/**
 * Checks a Slack request signature the way Slack documents it, written
 * independently of the emulator's signing code.
 */
export function verifySlack(
  secret: string,
  headers: IncomingHttpHeaders,
  body: string,
  nowSec = Math.floor(Date.now() / 1000),
): { ok: boolean; reason?: string } {
  const ts = headers["x-slack-request-timestamp"];
  const sig = headers["x-slack-signature"];
  if (typeof ts !== "string" || typeof sig !== "string") return { ok: false, reason: "missing" };
  if (Math.abs(nowSec - Number(ts)) > 60 * 5) return { ok: false, reason: "stale" };
  const expected = `v0=${createHmac("sha256", secret).update(`v0:${ts}:${body}`).digest("hex")}`;
  const a = Buffer.from(expected);
  const b = Buffer.from(sig);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return { ok: false, reason: "mismatch" };
  return { ok: true };
}

/** A stand-in for the app's Request URL: verifies, records, answers like a Slack app. */
export async function startReceiver(
  secret: string,
  respond: (r: Received) => { status: number; body?: string } = () => ({ status: 200 }),
) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const check = verifySlack(secret, req.headers, body);
      const record: Received = {
        path: req.url ?? "/",
        headers: req.headers,
        body,
        verified: check.ok,
        ...(check.reason ? { reason: check.reason } : {}),
      };
      received.push(record);
      const answer = check.ok ? respond(record) : { status: 401, body: check.reason };
      res.writeHead(answer.status, { "content-type": "text/plain" });
      res.end(answer.body ?? "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/slack/events`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
