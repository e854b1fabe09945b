import { type GatewayProcess, startGatewayProcess } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rssGrowthDuring, sendFiller } from "../platforms/helpers.ts";

/**
 * The REST API and the admin UI's API bound request bodies while they are
 * read, and a caller without a token or session is refused on its headers
 * before a byte of its body is read. A real `lobu run`, so the memory measured
 * is the gateway's own.
 */

/** A body the gateway must never hold: ~300 MB, streamed. */
const HUGE = 300 * 1024 * 1024;
/** How much the gateway may grow while refusing it (a correctness bound, not a timing one). */
const MAX_GROWTH = 64 * 1024 * 1024;
const JSON_TYPE = { "content-type": "application/json" };

let gw: GatewayProcess;

beforeAll(async () => {
  gw = await startGatewayProcess({});
});

afterAll(async () => {
  await gw?.stop();
});

async function errorCode(body: string): Promise<string | undefined> {
  return (JSON.parse(body) as { error?: { code?: string } }).error?.code;
}

/** Send HUGE bytes to `path`; the answer, and how much the gateway grew meanwhile. */
async function flood(path: string, sized: boolean, headers: Record<string, string> = {}) {
  const { result, growth } = await rssGrowthDuring(gw.child.pid!, () =>
    sendFiller(`${gw.url}${path}`, {
      totalBytes: HUGE,
      sized,
      headers: { ...JSON_TYPE, ...headers },
    }),
  );
  expect(result.sent).toBeLessThan(HUGE);
  expect(growth).toBeLessThan(MAX_GROWTH);
  // The gateway still answers normally afterwards.
  expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  return result;
}

describe("unauthenticated bodies are never read", () => {
  const routes: [string, string, string][] = [
    ["a message without a token", "/api/v1/agents/default/messages", "missing API token"],
    ["a token request without a token", "/api/v1/tokens", "missing API token"],
    [
      "a sandbox stop without an admin session",
      "/admin/api/sandboxes/sbx/stop",
      "no valid session",
    ],
  ];

  it.each(routes)("refuses %s, chunked, with 401 on its headers", async (_name, path, message) => {
    const res = await flood(path, false);
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: "unauthorized" } });
    expect(res.body).toContain(message);
  });

  it.each(routes)("refuses %s with a large Content-Length with 413", async (_name, path) => {
    const res = await flood(path, true);
    expect(res.status).toBe(413);
    expect(await errorCode(res.body)).toBe("payload_too_large");
  });

  it("refuses a wrong token the same way", async () => {
    const res = await flood("/api/v1/agents/default/messages", false, {
      authorization: "Bearer not-a-token",
    });
    expect(res.status).toBe(401);
  });
});

describe("bodies of callers let in are bounded while read", () => {
  it("refuses 300 MB chunked from a valid token with 413", async () => {
    const res = await flood("/api/v1/agents/default/messages", false, {
      authorization: `Bearer ${gw.token}`,
    });
    expect(res.status).toBe(413);
    expect(await errorCode(res.body)).toBe("payload_too_large");
  });

  it("refuses 300 MB chunked to the admin login (its body is the credential) with 413", async () => {
    const res = await flood("/admin/api/login", false);
    expect(res.status).toBe(413);
    expect(await errorCode(res.body)).toBe("payload_too_large");
  });

  it("still takes requests of ordinary size", async () => {
    const res = await gw.api("/api/v1/tokens", {
      method: "POST",
      body: JSON.stringify({ name: "ingress", role: "client" }),
    });
    expect(res.status).toBe(201);
    const login = await fetch(`${gw.url}/admin/api/login`, {
      method: "POST",
      headers: JSON_TYPE,
      body: JSON.stringify({ token: gw.token }),
    });
    expect(login.status).toBe(200);
  });
});

describe("a refused client gets its answer even when it reads late", () => {
  it("keeps the connection while discarding the rest, so a stalled client still reads its refusal", async () => {
    const { connect } = await import("node:net");
    const target = new URL(gw.url);
    const socket = connect(Number(target.port), target.hostname);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve).once("error", reject);
    });
    // 8 MiB chunked, well past the 1 MiB bound, written at once; then the client
    // stalls for longer than a short linger would wait before it reads anything.
    socket.pause();
    socket.write(
      `POST /api/v1/agents/default/messages HTTP/1.1\r\nHost: ${target.host}\r\n` +
        "Authorization: Bearer nope\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    const chunk = Buffer.alloc(64 * 1024, "a");
    for (let i = 0; i < 128; i++) {
      socket.write(`${chunk.length.toString(16)}\r\n`);
      socket.write(chunk);
      socket.write("\r\n");
    }
    await new Promise((r) => setTimeout(r, 1_500));
    const answer = await new Promise<string>((resolve, reject) => {
      let text = "";
      socket.on("data", (b: Buffer) => {
        text += b.toString();
        if (text.includes("\r\n\r\n")) resolve(text);
      });
      socket.once("error", reject);
      socket.once("close", () => reject(new Error(`closed with no answer read: ${text}`)));
      socket.resume();
    });
    socket.destroy();
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
  });
});
