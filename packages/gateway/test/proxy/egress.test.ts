import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createWorld, TRUSTING, v4, viaProxy, type World } from "./fixture.ts";

let w: World;

beforeAll(async () => {
  w = await createWorld();
});
afterAll(() => w.close());
beforeEach(() => {
  w.audit.length = 0;
  w.http.received.length = 0;
  w.http.routes.length = 0;
  w.resolverCalls.length = 0;
});

const httpUrl = (host: string, path = "/") => `http://${host}:${w.http.port}${path}`;

describe("plain HTTP forwarding", () => {
  it("forwards allowed requests, stripping proxy and hop-by-hop headers", async () => {
    const res = await viaProxy(w.proxyPort, httpUrl("api.allowed.test", "/v1/items?x=1"), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        "proxy-connection": "keep-alive",
        "x-lobu-sandbox": "sb_someone_else",
        connection: "x-drop-me",
        "x-drop-me": "1",
        "x-keep": "yes",
        host: "evil.test",
      },
      body: '{"a":1}',
    });
    expect(res.status).toBe(200);
    const got = w.http.received[0]!;
    expect(got.url).toBe("/v1/items?x=1");
    expect(got.host).toBe(`api.allowed.test:${w.http.port}`);
    expect(got.body).toBe('{"a":1}');
    expect(got.headers["x-keep"]).toBe("yes");
    for (const h of ["proxy-authorization", "proxy-connection", "x-lobu-sandbox", "x-drop-me"]) {
      expect(got.headers[h], h).toBeUndefined();
    }
    expect(w.audit).toEqual([
      expect.objectContaining({
        sandboxId: TRUSTING,
        agentId: "helper",
        method: "POST",
        host: "api.allowed.test",
        port: w.http.port,
        decision: "allowed",
        status: 200,
      }),
    ]);
  });

  it("refuses hosts outside the allow list with an explanation", async () => {
    const res = await viaProxy(w.proxyPort, httpUrl("evil.test", "/steal"));
    expect(res.status).toBe(403);
    expect(res.headers["content-type"]).toMatch(/text\/plain/);
    expect(res.body).toContain("evil.test");
    expect(res.body).toContain("not in the agent's network allow list");
    expect(res.body).toContain("ask the user to allow evil.test in the agent's settings page");
    expect(res.body).toContain("[agents.helper.network] allow in lobu.toml");
    expect(w.http.received).toHaveLength(0);
    expect(w.resolverCalls).toEqual([]);
    expect(w.audit).toEqual([
      expect.objectContaining({
        decision: "denied",
        host: "evil.test",
        status: 403,
        method: "GET",
      }),
    ]);
  });

  it("answers in JSON when the client accepts it", async () => {
    const res = await viaProxy(w.proxyPort, httpUrl("evil.test"), {
      headers: { accept: "application/json" },
    });
    expect(res.status).toBe(403);
    expect(res.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(res.body)).toEqual({
      error: {
        code: "egress_not_allowed",
        message: expect.stringContaining("evil.test"),
        host: "evil.test",
        reason: "evil.test is not in the agent's network allow list",
        hint: expect.stringContaining("[agents.helper.network] allow"),
      },
    });
  });

  it("lets deny win over allow", async () => {
    const res = await viaProxy(w.proxyPort, httpUrl("blocked.allowed.test"));
    expect(res.status).toBe(403);
    expect(res.body).toContain('matches deny rule "blocked.allowed.test"');
    expect(w.http.received).toHaveLength(0);
  });

  it("refuses origin-form requests that are not the internal API", async () => {
    const res = await viaProxy(w.proxyPort, "/etc/passwd");
    expect(res.status).toBe(400);
    expect(res.body).toContain("This is the Lobu egress proxy");
  });

  it("hands /__lobu/* to the internal handler with the sandbox id", async () => {
    const a = await viaProxy(w.proxyPort, "/__lobu/llm/anthropic/v1/messages");
    expect(a).toMatchObject({
      status: 200,
      body: `internal ${TRUSTING} /__lobu/llm/anthropic/v1/messages`,
    });
    // With NO_PROXY empty, clients send calls to the forwarder itself in absolute form.
    const b = await viaProxy(w.proxyPort, "http://127.0.0.1:9/__lobu/mcp?x=1");
    expect(b).toMatchObject({ status: 200, body: `internal ${TRUSTING} /__lobu/mcp?x=1` });
    expect(w.audit.map((r) => r.decision)).toEqual(["internal", "internal"]);
  });

  it("refuses unknown sandboxes", async () => {
    const { port } = await w.startProxy({ identity: { kind: "sandbox", sandboxId: "sb_gone" } });
    const res = await viaProxy(port, httpUrl("api.allowed.test"));
    expect(res.status).toBe(403);
    expect(res.body).toContain("unknown sandbox sb_gone");
    const internal = await viaProxy(port, "/__lobu/llm");
    expect(internal.status).toBe(403);
    expect(w.http.received).toHaveLength(0);
  });

  it("reports upstream failures as 502", async () => {
    w.dns.set("down.allowed.test", [v4("127.0.0.1")]);
    const res = await viaProxy(w.proxyPort, "http://down.allowed.test:1/");
    expect(res.status).toBe(502);
    expect(res.body).toContain("ECONNREFUSED");
    const missing = await viaProxy(w.proxyPort, "http://nxdomain.allowed.test/");
    expect(missing.status).toBe(502);
    expect(missing.body).toContain("cannot resolve nxdomain.allowed.test (ENOTFOUND)");
    expect(w.audit.map((r) => r.decision)).toEqual(["error", "denied"]);
  });
});
