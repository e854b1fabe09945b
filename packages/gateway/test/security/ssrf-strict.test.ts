import { type GatewayProcess, type MockLlm, startGatewayProcess } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOOPBACK_V4_SPELLINGS, LOOPBACK_V6_SPELLINGS } from "../proxy/spellings.ts";
import {
  attack,
  curlStatus,
  curlStep,
  egressAudit,
  freshSecret,
  type RawAttempt,
  rawProxyRequests,
  rawStatus,
  sandboxOf,
  sections,
  startTarget,
  type Target,
  type Upstream,
} from "./helpers.ts";

/**
 * SSRF without any operator opt-in: the allow list is `*`, and still no
 * loopback, private, link-local or metadata address is reachable from a sandbox,
 * in any spelling, directly or through a DNS name. A real server listens on
 * 127.0.0.1 as a decoy; it must never receive a byte.
 */

const PROVIDER_KEY = freshSecret("sk-ant-real-");
let target: Target;
let llm: MockLlm;
let gw: GatewayProcess;
let decoy: Upstream;

const RESOLVE = [
  "loop.test=127.0.0.1",
  "loop2.test=127.0.0.2",
  "v6loop.test=::1",
  "mapped.test=::ffff:127.0.0.1",
  "internal.test=10.0.0.5",
  "meta.test=169.254.169.254",
  "ecs.test=169.254.170.2",
  "v6meta.test=fd00:ec2::254",
  "cgnat.test=100.64.0.1",
  "ula.test=fd12::1",
  "mixed.test=93.184.216.34|10.0.0.5",
];

beforeAll(async () => {
  target = await startTarget({
    providerKey: PROVIDER_KEY,
    toml: '[network]\nallow = ["*"]\n',
    resolve: RESOLVE,
  });
  ({ gw, llm } = target);
  decoy = await target.upstream();
});

afterAll(() => target?.stop());

describe("SSRF without the operator opt-in (allow = ['*'])", () => {
  it("refuses every loopback spelling and name, by request and by CONNECT, and logs each", async () => {
    const P = decoy.port;
    const hosts = [
      ...LOOPBACK_V4_SPELLINGS,
      ...LOOPBACK_V6_SPELLINGS,
      "127.0.0.2",
      "0.0.0.0",
      "0",
      "localhost",
      "LOCALHOST",
      "localhost.",
      "api.localhost",
      "[::]",
      "loop.test",
      "loop2.test",
      "v6loop.test",
      "mapped.test",
    ];
    const attempts: RawAttempt[] = hosts.flatMap((h, i) => [
      { id: `get${i}`, kind: "get" as const, target: `http://${h}:${P}/steal` },
      { id: `con${i}`, kind: "connect" as const, target: `${h}:${P}` },
    ]);
    const { output } = await attack(gw, llm, rawProxyRequests(attempts), { user: "ssrf-loop" });
    const got = sections(output);
    for (const a of attempts) {
      const text = got.get(a.id) ?? "";
      expect(rawStatus(text), `${a.id} ${a.target}: ${text}\n---\n${output.slice(0, 2000)}`).toBe(
        403,
      );
      expect(text, a.target).toMatch(/Lobu egress proxy refused the request to/);
      expect(text, a.target).toMatch(/x-lobu-egress: egress_private_address/i);
    }
    expect(decoy.received).toEqual([]);

    // One denial per attempt in the audit log, with the canonical host.
    const sandbox = await sandboxOf(gw, "ssrf-loop");
    const denied = (await egressAudit(gw)).filter(
      (r) => r.sandboxId === sandbox && r.action === "egress.denied" && r.details?.port === P,
    );
    expect(denied).toHaveLength(attempts.length);
    expect(denied.every((r) => r.details?.status === 403)).toBe(true);
    const logged = new Set(denied.map((r) => r.details?.host));
    for (const h of ["127.0.0.1", "127.0.0.2", "0.0.0.0", "::1", "localhost", "loop.test"]) {
      expect(logged, h).toContain(h);
    }
  });

  it("refuses private, link-local, CGNAT, multicast and metadata addresses in every form", async () => {
    const targets = [
      "10.0.0.1",
      "192.168.1.1",
      "172.16.0.1",
      "100.64.0.1",
      "169.254.169.254",
      "0xa9fea9fe",
      "2852039166",
      "0251.0376.0251.0376",
      "169.254.170.2",
      "100.100.100.200",
      "168.63.129.16",
      "224.0.0.1",
      "255.255.255.255",
      "[fd00:ec2::254]",
      "[::ffff:169.254.169.254]",
      "[::ffff:a9fe:a9fe]",
      "[fe80::1]",
      "[fd12::1]",
      "[ff02::1]",
      "internal.test",
      "meta.test",
      "ecs.test",
      "v6meta.test",
      "cgnat.test",
      "ula.test",
      "mixed.test",
    ];
    // A distinct port per target, so each attempt is found in the audit log.
    const attempts: RawAttempt[] = targets.flatMap((h, i) => [
      { id: `get${i}`, kind: "get" as const, target: `http://${h}:${21000 + i}/latest/meta-data/` },
      { id: `con${i}`, kind: "connect" as const, target: `${h}:${22000 + i}` },
    ]);
    const { output } = await attack(gw, llm, rawProxyRequests(attempts), { user: "ssrf-private" });
    const got = sections(output);
    for (const a of attempts) {
      const text = got.get(a.id) ?? "";
      expect(rawStatus(text), `${a.id} ${a.target}: ${text}\n---\n${output.slice(0, 2000)}`).toBe(
        403,
      );
      expect(text).toMatch(/x-lobu-egress: egress_private_address/i);
    }
    const metadata = got.get("get4") ?? "";
    expect(metadata).toMatch(/169\.254\.169\.254 is a cloud metadata endpoint/);
    expect(got.get("get25")).toMatch(/mixed\.test resolves to 10\.0\.0\.5/);

    const sandbox = await sandboxOf(gw, "ssrf-private");
    const denied = (await egressAudit(gw)).filter(
      (r) => r.sandboxId === sandbox && r.action === "egress.denied",
    );
    for (let i = 0; i < targets.length; i++) {
      for (const port of [21000 + i, 22000 + i]) {
        const rec = denied.find((r) => r.details?.port === port);
        expect(rec, `${targets[i]}:${port} is in the audit log`).toBeDefined();
        expect(rec?.details?.status).toBe(403);
      }
    }
  });

  it("shows the agent why when it uses ordinary clients (curl, curl -v over CONNECT, python, node)", async () => {
    const cmd = [
      curlStep("curl-meta", "http://169.254.169.254/latest/meta-data/iam/"),
      curlStep("curl-https-v6meta", "-v https://[fd00:ec2::254]/"),
      `echo '### python'; python3 -c 'import urllib.request
try:
    urllib.request.urlopen("https://meta.test/", timeout=10)
except Exception as e:
    print(repr(e))' 2>&1`,
      // Node's https module shows the CONNECT status line; fetch() only says "fetch failed".
      `echo '### node'; node -e 'require("https").get("https://internal.test:${decoy.port}/", r => console.log("HTTP", r.statusCode)).on("error", e => console.log("ERR", e.message))' 2>&1`,
    ].join("\n");
    const { output } = await attack(gw, llm, cmd, { user: "ssrf-clients" });
    const got = sections(output);
    const meta = got.get("curl-meta") ?? "";
    expect(curlStatus(meta).http).toBe(403);
    expect(meta).toContain(
      "Lobu egress proxy refused the request to 169.254.169.254: 169.254.169.254 is a cloud metadata endpoint",
    );
    const v6 = got.get("curl-https-v6meta") ?? "";
    expect(curlStatus(v6).connect).toBe(403);
    expect(v6).toMatch(/X-Lobu-Egress-Reason: .*fd00:ec2::254 is a cloud metadata endpoint/);
    expect(got.get("python")).toMatch(
      /Tunnel connection failed: 403 .*meta\.test resolves to 169\.254\.169\.254 is a cloud metadata endpoint/,
    );
    expect(got.get("node")).toMatch(
      /ERR Failed to establish tunnel .* 403 .*internal\.test resolves to 10\.0\.0\.5/,
    );
    expect(decoy.received).toEqual([]);
  });

  it("a gateway refuses to start with the test-only DNS hook unless LOBU_TEST_MODE=1", async () => {
    const err = await startGatewayProcess({
      toml: "",
      env: {
        LOBU_TEST_MODE: undefined,
        LOBU_TEST_RESOLVE: "api.github.com=127.0.0.1",
        ANTHROPIC_API_KEY: PROVIDER_KEY,
      },
    }).then(
      (g) => g.stop().then(() => undefined),
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/LOBU_TEST_RESOLVE is test-only and LOBU_TEST_MODE is not 1/);
  });

  it("a gateway refuses to start with an allow_private_ranges entry it cannot parse, naming it", async () => {
    const err = await startGatewayProcess({
      toml: '[agents.default]\n[agents.default.network]\nallow_private_ranges = ["10.0.0.0/33"]\n',
      env: { ANTHROPIC_API_KEY: PROVIDER_KEY },
    }).then(
      (g) => g.stop().then(() => undefined),
      (e: Error) => e,
    );
    expect(err?.message).toMatch(
      /\[agents\.default\.network\] allow_private_ranges: "10\.0\.0\.0\/33" is not a CIDR range/,
    );
  });
});
