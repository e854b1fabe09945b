import { realpathSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createHostDriver } from "../../src/sandbox/index.ts";
import { FIXTURE, makeSpec, probe, scratch, TestEgress, testLogger } from "./helpers.ts";

describe("host driver (no isolation)", () => {
  const { dir, cleanup } = scratch();
  const egress = new TestEgress(dir);
  const driver = createHostDriver({ launcher: { entry: FIXTURE }, logger: testLogger() });
  const SECRET = "sk-host-driver-secret-41d2";

  afterAll(async () => {
    await driver.close();
    await egress.close();
    delete process.env.LOBU_TEST_PROVIDER_KEY;
    cleanup();
  });

  it("says it does not isolate", async () => {
    const p = await driver.probe();
    expect(p).toMatchObject({ driver: "host", isolated: false, ok: true });
    expect(p.details.join(" ")).toMatch(/allow_unsandboxed/);
  });

  it("runs the worker in its volume with a clean environment and one egress socket", async () => {
    process.env.LOBU_TEST_PROVIDER_KEY = SECRET;
    const spec = makeSpec(dir, "host-a", {}, { GREETING: "hi" });
    const s = await driver.start(spec, egress);
    expect(s.driver).toBe("host");
    const who = await probe<{ cwd: string; env: Record<string, string> }>(s, { op: "whoami" });
    const volume = realpathSync(spec.volumeDir);
    expect(who.cwd).toBe(volume);
    expect(who.env).toMatchObject({
      HOME: volume,
      LOBU_VOLUME: volume,
      LOBU_SANDBOX_ID: "host-a",
      PI_OFFLINE: "1",
      GREETING: "hi",
    });
    expect(JSON.stringify(who.env)).not.toContain(SECRET);
    expect(Object.keys(who.env)).not.toContain("LOBU_TEST_PROVIDER_KEY");
    const reply = await probe(s, { op: "unix", path: who.env.LOBU_EGRESS_SOCKET!, text: "x" });
    expect(reply).toEqual({ ok: true, reply: "egress:host-a:x" });
    await probe(s, { op: "write", path: join(volume, "f"), bytes: 100 });
    const usage = await s.usage();
    expect(usage.memoryBytes).toBeGreaterThan(0);
    expect(usage.diskBytes).toBeGreaterThan(0);
    await driver.stop("host-a");
    expect(await s.exited).toMatchObject({ reason: "stopped" });
  });

  it("reports crashes and escalates to SIGKILL when shutdown is ignored", async () => {
    const crash = await driver.start(makeSpec(dir, "host-b"), egress);
    await probe(crash, { op: "exit", code: 9 });
    expect(await crash.exited).toEqual({ code: 9, signal: null, reason: "crashed" });

    const stubborn = await driver.start(
      makeSpec(dir, "host-c", {}, { PROBE_IGNORE_SHUTDOWN: "1" }),
      egress,
    );
    await driver.stop("host-c", { graceMs: 200, reason: "idle" });
    const info = await stubborn.exited;
    expect(info.reason).toBe("idle");
    expect(info.signal).toMatch(/SIGTERM|SIGKILL/);
  });
});
