import { once } from "node:events";
import type http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  connect,
  createWorld,
  STRICT,
  TRUSTING,
  upgradeViaProxy,
  v4,
  viaProxy,
  type World,
} from "./fixture.ts";
import { LOOPBACK_V4_SPELLINGS, LOOPBACK_V6_SPELLINGS } from "./spellings.ts";

/**
 * The address guard at the socket level. The upstream listens on 127.0.0.1 and
 * every attack targets its real port, so a guard failure would show up as a
 * request reaching it. The `strict` sandbox allows every domain (`*`) but has no
 * private-range opt-in: only the guard stands between it and loopback.
 */

let w: World;
let strictPort: number;

beforeAll(async () => {
  w = await createWorld();
  strictPort = (await w.startProxy({ identity: { kind: "sandbox", sandboxId: STRICT } })).port;
});
afterAll(() => w.close());
beforeEach(() => {
  w.audit.length = 0;
  w.http.received.length = 0;
  w.http.routes.length = 0;
  w.resolverCalls.length = 0;
});

const literalHosts = [
  ...LOOPBACK_V4_SPELLINGS,
  ...LOOPBACK_V6_SPELLINGS,
  "127.0.0.2",
  "0.0.0.0",
  "0",
  "localhost",
  "LOCALHOST.",
  "169.254.169.254",
  "[::]",
  "[fd00:ec2::254]",
];

describe("address guard, plain HTTP", () => {
  it.each(literalHosts)("refuses http://%s", async (host) => {
    const res = await viaProxy(strictPort, `http://${host}:${w.http.port}/admin`);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(
      /loopback|unspecified|metadata|private|link-local|unique-local|embedded/,
    );
    expect(res.body).toContain("allow_private_ranges");
    expect(w.http.received).toHaveLength(0);
    expect(w.resolverCalls).toEqual([]);
    expect(w.audit).toEqual([
      expect.objectContaining({ sandboxId: STRICT, decision: "denied", status: 403 }),
    ]);
  });

  it("refuses a name that resolves to a private address", async () => {
    const res = await viaProxy(strictPort, `http://private.allowed.test:${w.http.port}/`);
    expect(res.status).toBe(403);
    expect(res.body).toContain(
      "private.allowed.test resolves to 10.1.2.3 is a private network address",
    );
    const meta = await viaProxy(strictPort, "http://metadata.allowed.test/latest/meta-data/");
    expect(meta.status).toBe(403);
    expect(meta.body).toContain("cloud metadata endpoint");
  });

  it("refuses a name when any of its addresses is private", async () => {
    w.dns.set("mixed.public.test", [v4("93.184.216.34"), v4("127.0.0.1")]);
    const res = await viaProxy(strictPort, `http://mixed.public.test:${w.http.port}/`);
    expect(res.status).toBe(403);
    expect(res.body).toContain("127.0.0.1 is a loopback address");
    expect(w.http.received).toHaveLength(0);
  });

  it("refuses loopback names that resolve to public addresses only by way of the resolver", async () => {
    w.dns.set("localhost", [v4("93.184.216.34")]);
    const res = await viaProxy(strictPort, `http://localhost:${w.http.port}/`);
    expect(res.status).toBe(403);
    expect(w.resolverCalls).toEqual([]);
  });

  it("without the operator opt-in, even the trusting sandbox's own test names are refused", async () => {
    w.policies.set("sb_nooptin", {
      agentId: "x",
      allow: ["*.allowed.test"],
      deny: [],
      allowPrivateRanges: [],
    });
    const { port } = await w.startProxy({ identity: { kind: "sandbox", sandboxId: "sb_nooptin" } });
    const res = await viaProxy(port, `http://api.allowed.test:${w.http.port}/`);
    expect(res.status).toBe(403);
    expect(res.body).toContain("api.allowed.test resolves to 127.0.0.1 is a loopback address");
    expect(w.http.received).toHaveLength(0);
  });
});

describe("address guard, CONNECT", () => {
  it.each(literalHosts)("refuses CONNECT %s", async (host) => {
    const t = await connect(strictPort, `${host}:${w.http.port}`);
    expect(t.status).toBe(403);
    expect(t.body).toContain("Lobu egress proxy refused the request");
    expect(w.http.received).toHaveLength(0);
    expect(w.audit).toEqual([
      expect.objectContaining({ method: "CONNECT", decision: "denied", status: 403 }),
    ]);
  });

  it("refuses CONNECT to a denied domain, explaining in the CONNECT response", async () => {
    const t = await connect(w.proxyPort, `evil.test:${w.https.port}`);
    expect(t.status).toBe(403);
    expect(t.head).toContain("X-Lobu-Egress: egress_not_allowed");
    expect(t.body).toContain("evil.test is not in the agent's network allow list");
    expect(t.body).toContain("ask the user to allow evil.test in the agent's settings page");
    expect(w.https.received).toHaveLength(0);
    const json = await connect(w.proxyPort, `evil.test:${w.https.port}`, {
      accept: "application/json",
    });
    expect(JSON.parse(json.body).error.code).toBe("egress_not_allowed");
  });

  it("refuses malformed CONNECT targets", async () => {
    for (const target of [
      "api.allowed.test",
      "api.allowed.test:0",
      "api.allowed.test:99999",
      ":443",
    ]) {
      const t = await connect(w.proxyPort, target);
      expect(t.status, target).toBe(400);
    }
  });
});

describe("DNS rebinding", () => {
  it("resolves once per request and connects to the vetted answer", async () => {
    let calls = 0;
    // First answer: the (opted-in) upstream. Every later answer: another loopback address.
    w.dns.set("rebind.allowed.test", () => (calls++ === 0 ? [v4("127.0.0.1")] : [v4("127.0.0.2")]));
    const first = await viaProxy(w.proxyPort, `http://rebind.allowed.test:${w.http.port}/one`);
    expect(first.status).toBe(200);
    expect(w.http.received.map((r) => r.url)).toEqual(["/one"]);
    expect(w.resolverCalls).toEqual(["rebind.allowed.test"]);
    // The next request is vetted again, against the new answer, and refused.
    const second = await viaProxy(w.proxyPort, `http://rebind.allowed.test:${w.http.port}/two`);
    expect(second.status).toBe(403);
    expect(second.body).toContain("127.0.0.2 is a loopback address");
    expect(w.http.received).toHaveLength(1);
  });

  it("a tunnel keeps the address vetted when it was opened", async () => {
    let calls = 0;
    w.dns.set("rebind2.allowed.test", () =>
      calls++ === 0 ? [v4("127.0.0.1")] : [v4("169.254.169.254")],
    );
    const t = await connect(w.proxyPort, `rebind2.allowed.test:${w.http.port}`);
    expect(t.status).toBe(200);
    t.socket.write(
      `GET /a HTTP/1.1\r\nHost: rebind2.allowed.test\r\n\r\nGET /b HTTP/1.1\r\nHost: rebind2.allowed.test\r\nConnection: close\r\n\r\n`,
    );
    await new Promise((r) => t.socket.on("close", r));
    expect(w.http.received.map((r) => r.url)).toEqual(["/a", "/b"]);
    expect(w.resolverCalls).toEqual(["rebind2.allowed.test"]);
  });
});

describe("redirects", () => {
  it("passes 3xx back and refuses the client's next hop to a denied or private host", async () => {
    w.http.routes.push((req, res) => {
      if (!req.url?.startsWith("/redirect")) return false;
      const to = new URL(req.url, "http://x").searchParams.get("to")!;
      res.writeHead(302, { location: to });
      res.end();
      return true;
    });
    for (const target of [
      "http://evil.test/collect",
      `http://169.254.169.254/latest/meta-data/`,
      `http://127.0.0.1:${w.http.port}/admin`,
      `http://private.allowed.test:${w.http.port}/`,
    ]) {
      w.http.received.length = 0;
      const hop = await viaProxy(
        w.proxyPort,
        `http://api.allowed.test:${w.http.port}/redirect?to=${encodeURIComponent(target)}`,
      );
      expect(hop.status).toBe(302);
      expect(hop.headers.location).toBe(target);
      expect(w.http.received.map((r) => r.url)).toEqual([
        `/redirect?to=${encodeURIComponent(target)}`,
      ]);
      // The client follows; the proxy checks the new request from scratch.
      const next = await viaProxy(w.proxyPort, target);
      expect(next.status, target).toBe(403);
      expect(w.http.received).toHaveLength(1);
    }
  });
});

describe("identity", () => {
  it("takes a pooled sandbox from x-lobu-sandbox and strips it", async () => {
    const { port } = await w.startProxy({ identity: { kind: "pool", poolId: "pool1" } });
    const ok = await viaProxy(port, `http://api.allowed.test:${w.http.port}/p`, {
      headers: { "x-lobu-sandbox": TRUSTING },
    });
    expect(ok.status).toBe(200);
    expect(w.http.received[0]!.headers["x-lobu-sandbox"]).toBeUndefined();
    const strict = await viaProxy(port, `http://api.allowed.test:${w.http.port}/p`, {
      headers: { "x-lobu-sandbox": STRICT },
    });
    expect(strict.status).toBe(403);
    const missing = await viaProxy(port, `http://api.allowed.test:${w.http.port}/p`);
    expect(missing.status).toBe(407);
    expect(missing.body).toContain("x-lobu-sandbox");
    const internal = await viaProxy(port, "/__lobu/llm", {
      headers: { "x-lobu-sandbox": TRUSTING },
    });
    expect(internal.body).toBe(`internal ${TRUSTING} /__lobu/llm`);
    expect(w.audit.map((r) => [r.sandboxId, r.decision])).toEqual([
      [TRUSTING, "allowed"],
      [STRICT, "denied"],
      [null, "denied"],
      [TRUSTING, "internal"],
    ]);
  });

  it("takes a pooled sandbox from Proxy-Authorization on CONNECT", async () => {
    const { port } = await w.startProxy({ identity: { kind: "pool", poolId: "pool1" } });
    const auth = (id: string) => ({
      "proxy-authorization": `Basic ${Buffer.from(`${id}:`).toString("base64")}`,
    });
    const ok = await connect(port, `api.allowed.test:${w.http.port}`, auth(STRICT));
    expect(ok.status).toBe(403); // strict: loopback refused, so the identity was used
    const trusted = await connect(port, `api.allowed.test:${w.http.port}`, auth(TRUSTING));
    expect(trusted.status).toBe(200);
    trusted.socket.destroy();
    const none = await connect(port, `api.allowed.test:${w.http.port}`);
    expect(none.status).toBe(407);
    expect(none.head).toContain('Proxy-Authenticate: Basic realm="lobu"');
  });

  it("ignores identity headers on a per-sandbox socket", async () => {
    const res = await viaProxy(strictPort, `http://api.allowed.test:${w.http.port}/`, {
      headers: { "x-lobu-sandbox": TRUSTING },
    });
    expect(res.status).toBe(403);
  });
});

describe("limits", () => {
  it("answers 431 to oversized headers", async () => {
    const res = await viaProxy(w.proxyPort, `http://api.allowed.test:${w.http.port}/`, {
      headers: { "x-big": "a".repeat(64 * 1024) },
    });
    expect(res.status).toBe(431);
    expect(w.http.received).toHaveLength(0);
    expect(w.audit).toEqual([
      expect.objectContaining({ decision: "denied", status: 431, sandboxId: TRUSTING }),
    ]);
  });

  it("caps concurrent tunnels per sandbox", async () => {
    const { port } = await w.startProxy({ limits: { maxTunnelsPerSandbox: 2 } });
    const a = await connect(port, `api.allowed.test:${w.http.port}`);
    const b = await connect(port, `other.allowed.test:${w.http.port}`);
    const c = await connect(port, `api.allowed.test:${w.http.port}`);
    expect([a.status, b.status, c.status]).toEqual([200, 200, 429]);
    expect(c.body).toContain("limit 2");
    a.socket.destroy();
    await new Promise((r) => setImmediate(r));
    let d = await connect(port, `api.allowed.test:${w.http.port}`);
    // The slot frees when the proxy sees the close; retry until then (no timing assumptions).
    while (d.status === 429) d = await connect(port, `api.allowed.test:${w.http.port}`);
    expect(d.status).toBe(200);
    b.socket.destroy();
    d.socket.destroy();
  });

  it("counts upgraded connections against the same limit", async () => {
    const { port } = await w.startProxy({ limits: { maxTunnelsPerSandbox: 1 } });
    const accept = (_req: http.IncomingMessage, socket: net.Socket) => {
      socket.on("error", () => {});
      // Echo, and close when the proxy does (upgraded sockets are half-open otherwise).
      socket.pipe(socket);
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      );
    };
    w.http.server.on("upgrade", accept);
    try {
      const ws = await upgradeViaProxy(port, `http://api.allowed.test:${w.http.port}/ws`);
      expect(ws.status).toBe(101);
      const over = await connect(port, `api.allowed.test:${w.http.port}`);
      expect(over.status).toBe(429);
      expect(over.body).toContain("limit 1");
      const second = await upgradeViaProxy(port, `http://api.allowed.test:${w.http.port}/ws2`);
      expect(second.status).toBe(429);
      ws.socket!.destroy();
      let t = await connect(port, `api.allowed.test:${w.http.port}`);
      // The slot frees when the proxy sees the close; retry until then (no timing assumptions).
      while (t.status === 429) t = await connect(port, `api.allowed.test:${w.http.port}`);
      expect(t.status).toBe(200);
      t.socket.destroy();
    } finally {
      w.http.server.off("upgrade", accept);
    }
  });

  it("frees the slot of a client that left while its policy was being looked up", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { server, port } = await w.startProxy({
      limits: { maxTunnelsPerSandbox: 1 },
      policyFor: async (id) => {
        await gate;
        return w.policies.get(id) ?? null;
      },
    });
    const client = net.connect(port, "127.0.0.1");
    client.on("error", () => {});
    client.write(`CONNECT api.allowed.test:${w.http.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const [, held] = (await once(server, "connect")) as [unknown, net.Socket];
    client.destroy();
    if (!held.destroyed) await once(held, "close");
    release();
    // Were the departed client still counted, this would be 429 for good.
    const t = await connect(port, `api.allowed.test:${w.http.port}`);
    expect(t.status).toBe(200);
    t.socket.destroy();
  });
});
