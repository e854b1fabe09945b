import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createEgressFetch } from "../../../worker/src/pool-egress.ts";
import { createVirtualWorkspace } from "../../../worker/src/virtual/index.ts";
import type { SecretRef } from "../../src/secrets/store.ts";
import { createWorld, STRICT, TRUSTING, type World } from "../proxy/fixture.ts";

/**
 * A pool process's network: the worker's egress fetch (what curl in the virtual
 * shell uses) against the gateway's real egress proxy bound to a pool identity.
 * The proxy believes the sandbox the request names, so the name must come from
 * the pool's code, whatever the agent puts in its headers.
 */

let w: World;
let socketPath: string;
const SECRET = "ghp_poolSecret0123456789abcdef0123";
const github: SecretRef = { name: "github", scope: { kind: "agent", agentId: "helper" } };
let placeholder: string;

beforeAll(async () => {
  w = await createWorld();
  const { server } = await w.startProxy({ identity: { kind: "pool", poolId: "pool-t" } });
  // Pools reach the proxy over a Unix socket, as in production.
  await new Promise((r) => server.close(r));
  socketPath = join(w.dir, "pool.sock");
  await new Promise<void>((r) => server.listen(socketPath, r));
  await w.secrets.set(github, SECRET);
  placeholder = await w.placeholders.issue({
    sandboxId: TRUSTING,
    secret: github,
    hosts: ["api.allowed.test"],
  });
});
afterAll(() => w.close());
beforeEach(() => {
  w.audit.length = 0;
  for (const up of [w.http, w.https]) up.received.length = 0;
});

/** The pool's fetch for the `trusting` sandbox, trusting the installation CA and the test's public one. */
function poolFetch(sandboxId = TRUSTING) {
  const ca = `${readFileSync(w.bundlePath, "utf8")}\n${w.upstreamCa.certPem}`;
  return createEgressFetch({ socketPath, sandboxId, ca });
}

describe("pool egress", () => {
  it("names the sandbox on plain HTTP and drops the agent's own identity headers", async () => {
    const res = await poolFetch()(`http://api.allowed.test:${w.http.port}/p?q=1`, {
      method: "POST",
      headers: {
        "x-lobu-sandbox": STRICT,
        "X-Lobu-Sandbox": STRICT,
        "proxy-authorization": `Basic ${Buffer.from(`${STRICT}:`).toString("base64")}`,
        "content-type": "text/plain",
      },
      body: "hello",
    });
    expect(res.status).toBe(200);
    const got = w.http.received.at(-1)!;
    expect(got).toMatchObject({ method: "POST", url: "/p?q=1", body: "hello" });
    expect(got.headers["x-lobu-sandbox"]).toBeUndefined();
    expect(got.headers["proxy-authorization"]).toBeUndefined();
    expect(w.audit.at(-1)).toMatchObject({ sandboxId: TRUSTING, decision: "allowed" });
  });

  it("tunnels HTTPS as the sandbox, with TLS end to end", async () => {
    const res = await poolFetch()(`https://other.allowed.test:${w.https.port}/t`, {
      headers: { "x-lobu-sandbox": STRICT },
    });
    expect(res.status).toBe(200);
    expect(w.https.received.at(-1)).toMatchObject({ url: "/t", tls: true });
    expect(w.audit.at(-1)).toMatchObject({ sandboxId: TRUSTING, decision: "tunnel" });
  });

  it("swaps the sandbox's placeholder through an intercepted tunnel", async () => {
    const res = await poolFetch()(`https://api.allowed.test:${w.https.port}/user`, {
      headers: { authorization: `Bearer ${placeholder}` },
    });
    expect(res.status).toBe(200);
    expect(w.https.received.at(-1)!.headers.authorization).toBe(`Bearer ${SECRET}`);
  });

  it("never swaps a placeholder for another sandbox of the pool", async () => {
    const res = await poolFetch(STRICT)(`https://api.allowed.test:${w.https.port}/user`, {
      headers: { authorization: `Bearer ${placeholder}`, "x-lobu-sandbox": TRUSTING },
    });
    // The strict sandbox may reach no loopback address at all: refused, nothing swapped.
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/private|loopback|not allowed/i);
    for (const up of [w.http, w.https])
      for (const r of up.received) expect(JSON.stringify(r.headers)).not.toContain(SECRET);
    expect(w.audit.at(-1)).toMatchObject({ sandboxId: STRICT, decision: "denied" });
  });

  it("passes the proxy's refusal through as the response", async () => {
    const res = await poolFetch()("https://blocked.allowed.test/");
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/blocked\.allowed\.test/);
  });

  it("is what curl in the virtual shell uses", async () => {
    const ws = createVirtualWorkspace({
      volumeDir: join(w.dir, "vol"),
      network: { fetch: poolFetch() },
    });
    try {
      const r = await ws.exec(
        `curl -s -H 'x-lobu-sandbox: ${STRICT}' http://api.allowed.test:${w.http.port}/from-shell`,
      );
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ url: "/from-shell" });
      expect(w.http.received.at(-1)!.headers["x-lobu-sandbox"]).toBeUndefined();
      expect(w.audit.at(-1)).toMatchObject({ sandboxId: TRUSTING });
    } finally {
      await ws.dispose();
    }
  });
});
