import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NETWORK_DISABLED_MESSAGE } from "../../src/virtual/index.ts";
import { workspace } from "./helpers.ts";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

let server: Server;
let origin: string;
const seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      if (req.url === "/moved") {
        res.writeHead(302, { location: "/final" }).end();
      } else {
        res.writeHead(200, { "content-type": "text/plain" }).end(`reply to ${req.url}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** The kind of fetch the pool hands in: records what it is asked, then (by default) sends it. */
function gatewayFetch(forward = true) {
  const calls: Array<{ url: string; method: string; headers: Headers; body: unknown }> = [];
  const fetchFn: typeof fetch = async (input, init) => {
    calls.push({
      url: String(input),
      method: init?.method ?? "GET",
      headers: new Headers(init?.headers),
      body: init?.body,
    });
    return forward ? fetch(input, init) : new Response("stub");
  };
  return { calls, fetchFn };
}

describe("network from the virtual shell", () => {
  it("sends curl through the provided fetch with method, headers and body", async () => {
    const { calls, fetchFn } = gatewayFetch();
    const ws = await workspace({ network: { fetch: fetchFn } });
    seen.length = 0;
    const r = await ws.exec(
      `curl -s -X POST -H 'Content-Type: application/json' -H 'X-Trace: abc' -d '{"a":1}' ${origin}/api`,
    );
    expect(r.stdout).toBe("reply to /api\n");
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ url: `${origin}/api`, method: "POST", body: '{"a":1}' });
    expect(calls[0]!.headers.get("x-trace")).toBe("abc");
    expect(calls[0]!.headers.get("content-type")).toBe("application/json");
    expect(seen[0]).toMatchObject({ method: "POST", url: "/api", body: '{"a":1}' });
    expect(seen[0]!.headers["x-trace"]).toBe("abc");
  });

  it("follows redirects hop by hop through the provided fetch", async () => {
    const { calls, fetchFn } = gatewayFetch();
    const ws = await workspace({ network: { fetch: fetchFn } });
    const r = await ws.exec(`curl -sL ${origin}/moved`);
    expect(r.stdout).toBe("reply to /final\n");
    expect(calls.map((c) => c.url)).toEqual([`${origin}/moved`, `${origin}/final`]);
  });

  it("reports the provided fetch's refusal as a curl error", async () => {
    const ws = await workspace({
      network: {
        fetch: async () => {
          throw new Error("blocked by egress policy");
        },
      },
    });
    const r = await ws.exec(`curl -sS ${origin}/x`);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain("blocked by egress policy");
  });

  it("fails clearly without a fetch, and never reaches the network", async () => {
    const ws = await workspace();
    seen.length = 0;
    const r = await ws.exec(`curl -sS ${origin}/x`);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(NETWORK_DISABLED_MESSAGE);
    expect(seen).toHaveLength(0);
  });

  it("only ever asks the provided fetch for http(s) URLs", async () => {
    const { calls, fetchFn } = gatewayFetch(false);
    const ws = await workspace({ network: { fetch: fetchFn } });
    const r = await ws.exec("curl -s file:///etc/passwd; curl -s ftp://host/x");
    expect(r.stdout).not.toContain("root:");
    // curl treats a URL without http(s):// as a host name: https://file:///etc/passwd.
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) expect(call.url).toMatch(/^https?:\/\//);
  });
});
