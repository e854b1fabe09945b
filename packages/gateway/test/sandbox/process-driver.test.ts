import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createProcessDriver, readVolumeMeta } from "../../src/sandbox/index.ts";
import { FIXTURE, makeSpec, probe, scratch, TestEgress, testLogger } from "./helpers.ts";

/** Lifecycle of the process driver: probe, start failures, concurrency, stop escalation. */
describe.skipIf(process.platform !== "linux")("process driver lifecycle", () => {
  const { dir, cleanup } = scratch();
  const egress = new TestEgress(dir);
  const driver = createProcessDriver({
    stateDir: join(dir, "state"),
    launcher: { entry: FIXTURE, readyTimeoutMs: 5000 },
    logger: testLogger(),
    uidBase: 350_000,
  });

  afterAll(async () => {
    await driver.close();
    await egress.close();
    cleanup();
  });

  it("probes this machine with a real trial sandbox", async () => {
    const p = await driver.probe();
    expect(p.details.join("\n")).toMatch(/trial sandbox: ok/);
    expect(p).toMatchObject({ driver: "process", isolated: true, ok: true });
  });

  it("reports what to install when bubblewrap is missing, without throwing", async () => {
    const broken = createProcessDriver({
      stateDir: join(dir, "state-broken"),
      bwrapPath: join(dir, "no-such-bwrap"),
      logger: testLogger(),
    });
    const p = await broken.probe();
    expect(p.ok).toBe(false);
    expect(p.details.join("\n")).toMatch(/apt-get install -y bubblewrap/);
  });

  it("starts sandboxes concurrently, each with its own stable uid", async () => {
    const ids = ["life-1", "life-2", "life-3", "life-4"];
    const started = await Promise.all(ids.map((id) => driver.start(makeSpec(dir, id), egress)));
    const uids = await Promise.all(
      started.map(async (s) => (await probe<{ uid: number }>(s, { op: "whoami" })).uid),
    );
    expect(new Set(uids).size).toBe(ids.length);
    const meta = await readVolumeMeta(join(dir, "volumes", "life-1"));
    expect(meta?.uid).toBe(uids[0]);
    await expect(driver.start(makeSpec(dir, "life-1"), egress)).rejects.toThrow(/already running/);
    await Promise.all(ids.map((id) => driver.stop(id)));
    // Same volume, same uid after a restart.
    const again = await driver.start(makeSpec(dir, "life-1"), egress);
    expect((await probe<{ uid: number }>(again, { op: "whoami" })).uid).toBe(uids[0]);
    await driver.stop("life-1");
  });

  it("escalates to signals when the worker ignores shutdown", async () => {
    const s = await driver.start(
      makeSpec(dir, "life-stubborn", {}, { PROBE_IGNORE_SHUTDOWN: "1" }),
      egress,
    );
    await driver.stop("life-stubborn", { graceMs: 300, reason: "idle" });
    const info = await s.exited;
    expect(info.reason).toBe("idle");
    expect(info.signal).toBe("SIGTERM");
  });

  it("cleans up after a worker that fails to start, and says why", async () => {
    const openBefore = egress.open;
    const err = (await driver
      .start(makeSpec(dir, "life-bad", {}, { PROBE_EXIT_BEFORE_READY: "4" }), egress)
      .catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/exited before it was ready \(exit code 4\)/);
    expect(err.message).toContain("probe-worker: exiting before ready as asked");
    expect(egress.open).toBe(openBefore);
    expect(driver.running()).not.toContain("life-bad");
    // The volume is usable again right away.
    const ok = await driver.start(makeSpec(dir, "life-bad"), egress);
    expect(existsSync(join(dir, "volumes", "life-bad"))).toBe(true);
    await driver.stop(ok.id);
  });
});
