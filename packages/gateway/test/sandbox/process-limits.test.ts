import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createProcessDriver, type ProcessDriver } from "../../src/sandbox/index.ts";
import { processTable } from "../../src/sandbox/proc.ts";
import {
  eventually,
  FIXTURE,
  makeSpec,
  probe,
  scratch,
  TestEgress,
  testLogger,
} from "./helpers.ts";

/** Resource limits of real `process` sandboxes: memory, processes, disk. */

const root = process.getuid?.() === 0;
const { dir, cleanup } = scratch();
const egress = new TestEgress(dir);
const drivers: ProcessDriver[] = [];
const driverWith = (opts: Partial<Parameters<typeof createProcessDriver>[0]> = {}) => {
  const d = createProcessDriver({
    stateDir: join(dir, `state-${drivers.length}`),
    launcher: { entry: FIXTURE },
    logger: testLogger(),
    uidBase: 320_000 + drivers.length * 1000,
    ...opts,
  });
  drivers.push(d);
  return d;
};

afterAll(async () => {
  await Promise.all(drivers.map((d) => d.close()));
  await egress.close();
  cleanup();
});

/**
 * Live host processes running as `uid` (root gateways give each sandbox its own).
 * Zombies are left out: bwrap's monitor exits without reaping the sandbox's init,
 * which the host's init reaps a little later.
 */
async function processesOf(uid: number): Promise<number[]> {
  const out: number[] = [];
  for (const pid of (await processTable()).keys()) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      if (new RegExp(`^Uid:\\s+${uid}\\s`, "m").test(status) && !/^State:\s+Z/m.test(status))
        out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

describe.skipIf(process.platform !== "linux")("process driver limits", () => {
  const driver = driverWith();

  it("OOM-kills a sandbox over its memory limit with reason oom; others keep working", async () => {
    const bystander = await driver.start(makeSpec(dir, "lim-by"), egress);
    const hog = await driver.start(makeSpec(dir, "lim-oom", { memoryMb: 128 }), egress);
    probe(hog, { op: "alloc", mb: 1024 }).catch(() => {});
    const info = await hog.exited;
    expect(info.reason).toBe("oom");
    expect(info.signal).toBe("SIGKILL");
    expect(await probe(bystander, { op: "procs" })).toHaveProperty("pids");
    expect(driver.running()).not.toContain("lim-oom");
  });

  it("contains a fork bomb with its process limit, and stop() takes all of it down", async () => {
    const spec = makeSpec(dir, "lim-fork", { pids: 48 });
    const s = await driver.start(spec, egress);
    const uid = (await probe<{ uid: number }>(s, { op: "whoami" })).uid;
    const burst = await probe<{ started: number; failed: number; errors: string[] }>(s, {
      op: "spawnMany",
      count: 100,
    });
    expect(burst.failed).toBeGreaterThan(0);
    expect(burst.errors).toContain("EAGAIN");
    expect(burst.started).toBeLessThan(48);
    await driver.stop("lim-fork", { graceMs: 500 });

    // A real fork bomb, in a fresh sandbox.
    const bomb = await driver.start(spec, egress);
    expect(await probe(bomb, { op: "forkbomb" })).toEqual({ ok: true });
    const usage = await eventually(async () => {
      const u = await bomb.usage();
      return (u.pids ?? 0) >= 40 ? u : undefined;
    });
    expect(usage.pids).toBeLessThanOrEqual(48);
    // The gateway side still talks to the worker while the bomb rages.
    expect(await probe(bomb, { op: "kill", pid: 99999 })).toMatchObject({ ok: false });

    await driver.stop("lim-fork", { graceMs: 500 });
    expect((await bomb.exited).reason).toBe("stopped");
    if (root) expect(await processesOf(uid)).toEqual([]);
  });

  it.skipIf(!root)(
    "enforces the disk quota with a loop-mounted image: writes fail with ENOSPC",
    async () => {
      expect(await driver.quotaMode()).toBe("loop");
      const s = await driver.start(makeSpec(dir, "lim-disk", { diskMb: 16 }), egress);
      const big = await probe<{ ok: boolean; code: string; written: number }>(s, {
        op: "write",
        path: "/workspace/big",
        bytes: 64 * 1024 * 1024,
      });
      expect(big.ok).toBe(false);
      expect(["ENOSPC", "EFBIG"]).toContain(big.code);
      const usage = await s.usage();
      expect(usage.diskBytes).toBeLessThanOrEqual(16 * 1024 * 1024);
      // Still alive: a full disk is the agent's problem, not a crash.
      expect(await probe(s, { op: "procs" })).toHaveProperty("pids");
      await driver.stop("lim-disk");
    },
  );

  it.skipIf(!root)(
    "never holds on to another gateway's volumes, so they restart at once",
    async () => {
      // A second gateway on this host, with its own volumes root.
      const other = driverWith();
      const mine = await driver.start(makeSpec(dir, "lim-mine", { diskMb: 16 }), egress);
      const theirs = await other.start(makeSpec(join(dir, "gw2"), "lim-theirs"), egress);
      // The other sandbox's mount namespace (its outer bwrap's) has no copy of this volume...
      const mounts = readFileSync(`/proc/${theirs.connection.pid}/mountinfo`, "utf8");
      const volume = join(dir, "volumes", "lim-mine");
      expect(mounts.split("\n").filter((l) => l.split(" ")[4] === volume)).toEqual([]);
      // ...so stopping this one detaches its disk image, and it starts again at once.
      await driver.stop(mine.id);
      const again = await driver.start(makeSpec(dir, "lim-mine", { diskMb: 16 }), egress);
      expect(await probe(again, { op: "procs" })).toHaveProperty("pids");
      await driver.stop(again.id);
      await other.stop(theirs.id);
    },
  );

  it("stops a sandbox over its quota with reason disk_full (watchdog mode), and caps file size", async () => {
    const watched = driverWith({ quota: "watch", diskCheckIntervalMs: 100 });
    expect(await watched.quotaMode()).toBe("watch");
    const s = await watched.start(makeSpec(dir, "lim-watch", { diskMb: 16 }), egress);
    // One file can never exceed the quota (RLIMIT_FSIZE)...
    const one = await probe<{ ok: boolean; code: string }>(s, {
      op: "write",
      path: "/workspace/one",
      bytes: 32 * 1024 * 1024,
    });
    expect(one).toMatchObject({ ok: false, code: "EFBIG" });
    // ...and many files together get the sandbox stopped.
    for (let i = 0; i < 4; i++)
      await probe(s, { op: "write", path: `/workspace/part${i}`, bytes: 12 * 1024 * 1024 }).catch(
        () => {},
      );
    expect((await s.exited).reason).toBe("disk_full");
  });
});
