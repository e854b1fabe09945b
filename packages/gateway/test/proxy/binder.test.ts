import { existsSync, statSync } from "node:fs";
import net, { type AddressInfo } from "node:net";
import { join } from "node:path";
import { workerProxyEnv } from "@lobu/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createEgressBinder } from "../../src/proxy/binder.ts";
import { createEgressServer } from "../../src/proxy/server.ts";
import type { SecretRef } from "../../src/secrets/store.ts";
import { createWorld, curl, run, STRICT, TRUSTING, viaProxy, type World } from "./fixture.ts";

/**
 * Real clients (curl) through the proxy, over TCP and over the per-sandbox Unix
 * socket the binder opens.
 */

let w: World;
const SECRET = "glpat-realSecretValue-0123456789";
const gitlab: SecretRef = { name: "gitlab", scope: { kind: "agent", agentId: "helper" } };
let placeholder: string;

beforeAll(async () => {
  w = await createWorld();
  await w.secrets.set(gitlab, SECRET);
  placeholder = await w.placeholders.issue({
    sandboxId: TRUSTING,
    secret: gitlab,
    hosts: ["api.allowed.test"],
  });
});
afterAll(() => w.close());
beforeEach(() => {
  w.audit.length = 0;
  for (const up of [w.http, w.https]) {
    up.received.length = 0;
    up.routes.length = 0;
  }
});

const proxyArg = () => ["--proxy", `http://127.0.0.1:${w.proxyPort}`];

describe("curl through the proxy", () => {
  it("HTTPS with a swapped placeholder (intercepted, trusting the bundle)", async () => {
    const r = await curl([
      ...proxyArg(),
      "--cacert",
      w.bundlePath,
      "-H",
      `Authorization: Bearer ${placeholder}`,
      `https://api.allowed.test:${w.https.port}/v4/projects?private_token=${placeholder}`,
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const got = w.https.received[0]!;
    expect(got.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(got.url).toBe(`/v4/projects?private_token=${SECRET}`);
    expect(r.stdout).not.toContain(SECRET);
    expect(JSON.parse(r.stdout).headers.authorization).toBe(`Bearer ${placeholder}`);
  });

  it("HTTPS to a host without bindings is a raw tunnel (curl verifies the upstream's own CA)", async () => {
    const r = await curl([
      ...proxyArg(),
      "--cacert",
      w.upstreamCa.caPath,
      `https://other.allowed.test:${w.https.port}/plain`,
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).url).toBe("/plain");
  });

  it("a denied HTTPS host fails the CONNECT with the proxy's explanation", async () => {
    const r = await curl([...proxyArg(), "--cacert", w.bundlePath, "https://evil.test/"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/CONNECT tunnel failed, response 403/);
  });

  it("a denied HTTP host gets a 403 that explains itself", async () => {
    const r = await curl([...proxyArg(), "-w", "\n%{http_code}", "http://evil.test/"]);
    const [body, code] = [
      r.stdout.slice(0, r.stdout.lastIndexOf("\n")),
      r.stdout.slice(r.stdout.lastIndexOf("\n") + 1),
    ];
    expect(code).toBe("403");
    expect(body).toContain("ask the user to allow evil.test in the agent's settings page");
  });

  it("following a redirect from an allowed host to a private one ends in a refusal", async () => {
    w.http.routes.push((req, res) => {
      if (req.url !== "/go") return false;
      res.writeHead(302, { location: `http://169.254.169.254/latest/meta-data/iam/` });
      res.end();
      return true;
    });
    const r = await curl([
      ...proxyArg(),
      "-L",
      "-w",
      "\n%{http_code} %{num_redirects}",
      `http://api.allowed.test:${w.http.port}/go`,
    ]);
    expect(r.stdout.trim().split("\n").at(-1)).toBe("403 1");
    expect(r.stdout).toContain("169.254.169.254 is a cloud metadata endpoint");
    expect(r.stdout).not.toContain("ask the user to allow");
    expect(w.http.received.map((x) => x.url)).toEqual(["/go"]);
  });

  it("strict sandbox: curl to loopback forms is refused", async () => {
    const { port } = await w.startProxy({ identity: { kind: "sandbox", sandboxId: STRICT } });
    for (const url of [
      `http://2130706433:${w.http.port}/`,
      `http://[::ffff:127.0.0.1]:${w.http.port}/`,
      `http://localhost:${w.http.port}/`,
    ]) {
      const r = await curl(["--proxy", `http://127.0.0.1:${port}`, "-w", "\n%{http_code}", url]);
      expect(r.stdout.trim().split("\n").at(-1), url).toBe("403");
    }
    const tunnel = await curl([
      "--proxy",
      `http://127.0.0.1:${port}`,
      "-k",
      `https://0x7f.1:${w.https.port}/`,
    ]);
    expect(tunnel.stderr).toMatch(/CONNECT tunnel failed, response 403/);
    expect(w.http.received).toHaveLength(0);
    expect(w.https.received).toHaveLength(0);
  });
});

describe("node with the worker environment", () => {
  it("fetch() goes through the proxy and trusts the bundle", async () => {
    const env = workerProxyEnv({
      proxyUrl: `http://127.0.0.1:${w.proxyPort}`,
      caBundlePath: w.bundlePath,
    });
    const script = `const r = await fetch("https://api.allowed.test:${w.https.port}/node", { headers: { authorization: "Bearer ${placeholder}" } }); console.log(r.status, await r.text());`;
    const out = await run(process.execPath, ["--input-type=module", "-e", script], {
      ...env,
      PATH: process.env.PATH ?? "",
    });
    expect(out.stderr).toBe("");
    expect(out.stdout.startsWith("200 ")).toBe(true);
    expect(out.stdout).not.toContain(SECRET);
    expect(w.https.received.map((r) => [r.url, r.headers.authorization])).toEqual([
      ["/node", `Bearer ${SECRET}`],
    ]);
  });
});

describe("egress binder", () => {
  it("listens on a private per-sandbox Unix socket and cleans up on close", async () => {
    const binder = createEgressBinder({
      runDir: join(w.dir, "run"),
      createServer: (identity) =>
        createEgressServer({
          identity,
          policyFor: async (id) => w.policies.get(id) ?? null,
          placeholders: w.placeholders,
          secrets: w.secrets,
          ca: w.ca,
          resolver: async () => [{ address: "127.0.0.1", family: 4 }],
          upstreamCa: w.upstreamCa.certPem,
          audit: (r) => w.audit.push(r),
        }),
    });
    const binding = await binder.bind({ kind: "sandbox", sandboxId: TRUSTING });
    const other = await binder.bind({ kind: "sandbox", sandboxId: STRICT });
    expect(binding.socketPath.endsWith("/egress.sock")).toBe(true);
    expect(binding.socketPath).not.toBe(other.socketPath);
    const dir = join(binding.socketPath, "..");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(binding.socketPath).isSocket()).toBe(true);
    expect(statSync(binding.socketPath).mode & 0o777).toBe(0o600);

    // A node client and curl, both over the socket.
    const viaNode = await viaProxy(0, `http://api.allowed.test:${w.http.port}/sock`, {
      socketPath: binding.socketPath,
    });
    expect(viaNode.status).toBe(200);
    // curl behind a TCP → Unix socket forwarder, as inside a sandbox.
    const forwarder = net.createServer((c) => {
      const up = net.connect(binding.socketPath);
      c.pipe(up).pipe(c);
      c.on("error", () => up.destroy());
      up.on("error", () => c.destroy());
    });
    await new Promise<void>((r) => forwarder.listen(0, "127.0.0.1", r));
    const fwdPort = (forwarder.address() as AddressInfo).port;
    const viaCurl = await curl([
      "--proxy",
      `http://127.0.0.1:${fwdPort}`,
      "-H",
      `x-token: ${placeholder}`,
      `http://api.allowed.test:${w.http.port}/curl`,
    ]);
    expect(viaCurl.code).toBe(0);
    expect(w.http.received.map((r) => [r.url, r.headers["x-token"]])).toEqual([
      ["/sock", undefined],
      ["/curl", SECRET],
    ]);
    // Each socket is its own sandbox.
    const strict = await viaProxy(0, `http://api.allowed.test:${w.http.port}/`, {
      socketPath: other.socketPath,
    });
    expect(strict.status).toBe(403);

    const tls = await curl([
      "--proxy",
      `http://127.0.0.1:${fwdPort}`,
      "--cacert",
      w.bundlePath,
      "-H",
      `x-token: ${placeholder}`,
      `https://api.allowed.test:${w.https.port}/curl-tls`,
    ]);
    expect(tls.code).toBe(0);
    expect(w.https.received.map((r) => [r.url, r.headers["x-token"]])).toEqual([
      ["/curl-tls", SECRET],
    ]);
    forwarder.close();

    await binding.close();
    await binding.close();
    expect(existsSync(dir)).toBe(false);
    await other.close();
  });

  it("refuses run directories too long for a Unix socket", async () => {
    const binder = createEgressBinder({
      runDir: join(w.dir, "x".repeat(120)),
      createServer: () => {
        throw new Error("not reached");
      },
    });
    await expect(binder.bind({ kind: "pool", poolId: "p" })).rejects.toThrow(
      /longer than 107 bytes/,
    );
  });
});
