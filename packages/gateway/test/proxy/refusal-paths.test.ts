import { once } from "node:events";
import net from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { connect, createWorld, TRUSTING, viaProxy, type World } from "./fixture.ts";

/**
 * Refusals through a real egress server that no other proxy test reaches: a
 * failed policy lookup, a missing internal API, a pool sandbox placed elsewhere,
 * and a request the HTTP parser rejects.
 */

let w: World;

beforeAll(async () => {
  w = await createWorld();
});
afterAll(() => w.close());
beforeEach(() => {
  w.audit.length = 0;
  w.http.received.length = 0;
});

const httpUrl = (host: string) => `http://${host}:${w.http.port}/`;

describe("refusal paths", () => {
  it("answers 502 when the sandbox's policy cannot be loaded, and records the refusal", async () => {
    const { port } = await w.startProxy({
      policyFor: async () => {
        throw new Error("store unavailable");
      },
    });
    const res = await viaProxy(port, httpUrl("api.allowed.test"));
    expect(res.status).toBe(502);
    expect(res.headers["x-lobu-egress"]).toBe("egress_upstream_error");
    expect(res.body).toContain("the gateway could not load this sandbox's network policy");
    expect(w.http.received).toHaveLength(0);
    expect(w.audit).toMatchObject([
      { sandboxId: TRUSTING, decision: "denied", status: 502, host: "api.allowed.test" },
    ]);
  });

  it("answers 404 on /__lobu/* without an internal API, after recording the call", async () => {
    const { port } = await w.startProxy({ internal: undefined });
    const res = await viaProxy(port, "/__lobu/llm/v1/messages?key=1");
    expect(res.status).toBe(404);
    expect(res.body).toContain("no internal API is attached to this egress endpoint");
    expect(w.audit).toMatchObject([
      {
        sandboxId: TRUSTING,
        agentId: "helper",
        decision: "internal",
        reason: "/__lobu/llm/v1/messages",
      },
    ]);
  });

  it("refuses a pool's request for a sandbox placed on another pool, plain and by CONNECT", async () => {
    const { port } = await w.startProxy({
      identity: { kind: "pool", poolId: "pool1" },
      poolMember: (_pool, sandboxId) => sandboxId !== TRUSTING,
    });
    const plain = await viaProxy(port, httpUrl("api.allowed.test"), {
      headers: { "x-lobu-sandbox": TRUSTING },
    });
    expect(plain.status).toBe(403);
    expect(plain.body).toContain(`sandbox ${TRUSTING} is not placed on pool pool1`);
    const tunnel = await connect(port, `api.allowed.test:${w.http.port}`, {
      "proxy-authorization": `Basic ${Buffer.from(`${TRUSTING}:`).toString("base64")}`,
    });
    expect(tunnel.status).toBe(403);
    expect(w.http.received).toHaveLength(0);
    expect(w.audit.map((r) => [r.sandboxId, r.method, r.decision, r.status])).toEqual([
      [null, "GET", "denied", 403],
      [null, "CONNECT", "denied", 403],
    ]);
  });

  it("answers a request the parser rejects with 400 and records it for the socket's sandbox", async () => {
    const socket = net.connect(w.proxyPort, "127.0.0.1");
    socket.write("NOT A REQUEST\r\n\r\n");
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    await once(socket, "close");
    const text = Buffer.concat(chunks).toString("utf8");
    expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request - /);
    expect(text).toContain("malformed HTTP request");
    expect(w.audit).toMatchObject([
      { sandboxId: TRUSTING, method: "", host: "", port: 0, decision: "denied", status: 400 },
    ]);
  });

  it.each([
    ["a host off the allow list", () => httpUrl("evil.test"), 403],
    ["the internal API", () => "/__lobu/llm/anthropic/v1/messages", 404],
  ])(
    "answers %s before a Connection: close body arrives, and reads that body instead of resetting",
    async (_, url, status) => {
      const { port } = await w.startProxy({ internal: undefined });
      const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
      let text = "";
      let error: Error | undefined;
      socket.on("data", (c: Buffer) => {
        text += c.toString("utf8");
      });
      socket.on("error", (err) => {
        error ??= err;
      });
      // Python's urllib: `Connection: close`, the body in a write of its own.
      socket.write(
        `POST ${url()} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\n`,
      );
      await vi.waitFor(() => expect(text).toContain("\r\n\r\n"), { timeout: 10_000 });
      socket.write("hello");
      await new Promise((r) => setTimeout(r, 100));
      socket.write("world");
      await new Promise((r) => setTimeout(r, 100));
      socket.end();
      const closed = await new Promise<boolean>((resolve) => {
        socket.once("close", () => resolve(true));
        setTimeout(() => resolve(false), 5_000);
      });
      socket.destroy();
      expect({ closed, error }).toEqual({ closed: true, error: undefined });
      expect(text.startsWith(`HTTP/1.1 ${status} `)).toBe(true);
    },
  );
});
