import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent } from "undici";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { gatewayFetch, POOL_GATEWAY_URL } from "../src/pool-egress.ts";

/**
 * The pool's fetch for pi's model calls: over the egress socket (a unix socket
 * here, as in a pool) on undici's request API, with fetch's answers and
 * failures; anything that is not such a call goes to the installed fetch.
 */

const MODEL_CALL = `${POOL_GATEWAY_URL}/__lobu/llm/anthropic/v1/messages`;

let dir: string;
let server: Server;
let agent: Agent;
let handle: (req: IncomingMessage, body: string, res: ServerResponse) => void;
const seen: { method: string; url: string; headers: IncomingMessage["headers"]; body: string }[] =
  [];
const fallbackCalls: unknown[] = [];
const fallback = (async (input: unknown) => {
  fallbackCalls.push(input);
  return new Response("from the installed fetch");
}) as typeof fetch;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lobu-gateway-fetch-"));
  const socketPath = join(dir, "egress.sock");
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      handle(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  agent = new Agent({ connect: { socketPath } });
});

afterAll(async () => {
  await agent.close();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  seen.length = 0;
  fallbackCalls.length = 0;
});

describe("the pool's fetch for model calls", () => {
  it("sends the call with its headers and body, and streams the answer as it comes", async () => {
    let second: () => void = () => {};
    handle = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "x-request-id": "r1" });
      res.write("event: message_start\ndata: {}\n\n");
      second = () => res.end("event: message_stop\ndata: {}\n\n");
    };
    const fetch = gatewayFetch(agent, fallback);
    const headers = new Headers({
      "content-type": "application/json",
      "x-api-key": "lobu_secret_placeholder",
      "x-lobu-sandbox": "sb_1",
    });
    const res = await fetch(MODEL_CALL, { method: "POST", headers, body: '{"model":"m"}' });
    expect(fallbackCalls).toEqual([]);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("r1");
    expect(seen[0]).toMatchObject({
      method: "POST",
      url: "/__lobu/llm/anthropic/v1/messages",
      body: '{"model":"m"}',
      headers: { "x-api-key": "lobu_secret_placeholder", "x-lobu-sandbox": "sb_1" },
    });
    // The first event is readable before the answer ends.
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value!).toString()).toContain("message_start");
    second();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read())
      rest += Buffer.from(r.value).toString();
    expect(rest).toContain("message_stop");
  });

  it("takes byte bodies and plain-object headers too, and gives a bodiless answer no body", async () => {
    handle = (_req, _body, res) => {
      res.writeHead(204);
      res.end();
    };
    const fetch = gatewayFetch(agent, fallback);
    const res = await fetch(new URL(MODEL_CALL), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new TextEncoder().encode("{}"),
    });
    expect(res.status).toBe(204);
    expect(res.body).toBeNull();
    expect(seen[0]!.body).toBe("{}");
    expect(fallbackCalls).toEqual([]);
  });

  it("fails as fetch does: TypeError with the cause when unreachable, the signal's reason when aborted", async () => {
    const nowhere = new Agent({ connect: { socketPath: join(dir, "missing.sock") } });
    const failed = await gatewayFetch(nowhere, fallback)(MODEL_CALL, { method: "POST", body: "{}" })
      .then(() => undefined)
      .catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(TypeError);
    expect((failed as TypeError).message).toBe("fetch failed");
    expect((failed as { cause?: { code?: string } }).cause?.code).toBe("ENOENT");
    await nowhere.close();

    // Aborted while waiting for the answer, then while reading its body.
    handle = () => {};
    const fetch = gatewayFetch(agent, fallback);
    const waiting = new AbortController();
    const pending = fetch(MODEL_CALL, { method: "POST", body: "{}", signal: waiting.signal });
    await until(() => seen.length === 1);
    waiting.abort();
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });

    handle = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event: a\ndata: {}\n\n");
    };
    const reading = new AbortController();
    const res = await fetch(MODEL_CALL, { method: "POST", body: "{}", signal: reading.signal });
    const reader = res.body!.getReader();
    await reader.read();
    reading.abort();
    await expect(reader.read()).rejects.toBeDefined();
  });

  it("leaves everything else to the installed fetch", async () => {
    const fetch = gatewayFetch(agent, fallback);
    const calls: Array<Parameters<typeof fetch>> = [
      ["https://api.example.test/v1/messages", { method: "POST", body: "{}" }],
      [new Request(MODEL_CALL, { method: "POST", body: "{}" })],
      [MODEL_CALL, { method: "POST", body: new Blob(["{}"]) }],
      [MODEL_CALL, { method: "POST", body: "{}", redirect: "manual" }],
    ];
    for (const args of calls) {
      const res = await fetch(...args);
      expect(await res.text()).toBe("from the installed fetch");
    }
    expect(fallbackCalls).toHaveLength(calls.length);
    expect(seen).toEqual([]);
  });
});

/** Wait for a condition the test itself causes (the suite's timeout bounds it). */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setTimeout(r, 5));
}
