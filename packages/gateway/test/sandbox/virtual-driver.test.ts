import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { SandboxSpec } from "../../src/sandbox/driver.ts";
import {
  createVirtualDriver,
  type PoolIsolation,
  placeSandbox,
  type VirtualDriver,
} from "../../src/sandbox/index.ts";
import { isAlive } from "../../src/sandbox/proc.ts";
import { eventually, scratch, TestEgress, testLogger } from "./helpers.ts";

/**
 * The `virtual` driver with the real worker in pool mode: placement, per-sandbox
 * lifecycles multiplexed on pool processes, pool death. What agents can do inside
 * is covered end to end in test/e2e/sandboxes-*.test.ts.
 */

const root = process.getuid?.() === 0;
const { dir, cleanup } = scratch("lobu-virt-");
const egress = new TestEgress(dir);
const drivers: VirtualDriver[] = [];

function driverWith(isolation: PoolIsolation, poolSize = 2, poolIdleMs = 300_000): VirtualDriver {
  const d = createVirtualDriver({
    stateDir: join(dir, `state-${drivers.length}`),
    volumesRoot: join(dir, `volumes-${drivers.length}`),
    poolSize,
    isolation,
    poolIdleMs,
    logger: testLogger(),
    // Own cgroup names: pools of every driver here are called pool-<n>.
    process: {
      uidBase: 330_000 + drivers.length * 1000,
      cgroup: { name: `lobu-vd-${drivers.length}` },
    },
  });
  drivers.push(d);
  return d;
}

function spec(d: VirtualDriver, id: string): SandboxSpec {
  const volumesRoot = join(dir, `volumes-${drivers.indexOf(d)}`);
  const volumeDir = join(volumesRoot, id);
  mkdirSync(volumeDir, { recursive: true });
  return {
    id,
    key: { agentId: "a", platform: "test", userId: id, channelId: "c" },
    volumeDir,
    limits: { memoryMb: 256, cpus: 1, pids: 64, diskMb: 32 },
    env: {},
  };
}

afterAll(async () => {
  await Promise.all(drivers.map((d) => d.close()));
  await egress.close();
  cleanup();
});

describe("virtual driver placement", () => {
  it("places a sandbox on the same pool every time and spreads sandboxes over pools", () => {
    const ids = Array.from({ length: 400 }, (_, i) => `sb_${i.toString(36)}x`);
    const counts = [0, 0, 0, 0];
    for (const id of ids) {
      const p = placeSandbox(id, 4);
      expect(placeSandbox(id, 4)).toBe(p);
      counts[p]!++;
    }
    for (const c of counts) expect(c).toBeGreaterThan(50);
    // Growing the pool count moves only the sandboxes that land on the new pool.
    const moved = ids.filter((id) => {
      const after = placeSandbox(id, 5);
      return after !== placeSandbox(id, 4) && after !== 4;
    });
    expect(moved).toEqual([]);
  });
});

const modes: PoolIsolation[] = [
  "none",
  ...(process.platform === "linux" ? (["bwrap"] as const) : []),
];

describe.each(modes)("virtual driver with pools isolated by %s", (isolation) => {
  it("multiplexes sandboxes on pool processes and stops them one at a time", async () => {
    const d = driverWith(isolation);
    expect((await d.isolation()).mode).toBe(isolation);
    const ids = ["vd-a", "vd-b", "vd-c", "vd-d", "vd-e", "vd-f"];
    const started = await Promise.all(ids.map((id) => d.start(spec(d, id), egress)));
    const pools = d.pools().filter((p) => p.running);
    expect(pools.length).toBe(2);
    expect(pools.flatMap((p) => p.sandboxes).sort()).toEqual([...ids].sort());
    for (const s of started) {
      const pool = pools.find((p) => p.sandboxes.includes(s.id))!;
      expect(s.connection.pid).toBe(pool.pid);
      expect(s.driver).toBe("virtual");
    }
    expect(egress.binds.filter((b) => b.kind === "pool").length).toBeGreaterThanOrEqual(2);

    await expect(d.start(spec(d, "vd-a"), egress)).rejects.toThrow(/already running/);
    const a = started[0]!;
    await d.stop("vd-a", { reason: "idle" });
    expect(await a.exited).toEqual({ code: 0, signal: null, reason: "idle" });
    expect(d.running()).not.toContain("vd-a");
    // The pool keeps serving the others.
    const poolOfA = pools.find((p) => p.sandboxes.includes("vd-a"))!;
    expect(isAlive(poolOfA.pid!)).toBe(true);
    // ...and takes the sandbox back on its next start.
    const again = await d.start(spec(d, "vd-a"), egress);
    expect(again.connection.pid).toBe(poolOfA.pid);
  });

  it("never lets one sandbox address another or the whole pool", async () => {
    const d = driverWith(isolation, 1);
    const a = await d.start(spec(d, "vd-x"), egress);
    const b = await d.start(spec(d, "vd-y"), egress);
    const seen: string[] = [];
    b.connection.onMessage((m) => seen.push(m.t));
    a.connection.send({ t: "close", sandboxId: "vd-y" });
    a.connection.send({ t: "shutdown" });
    // A close of its own goes through and is answered to it alone.
    const closed = new Promise((r) => a.connection.onMessage((m) => m.t === "closed" && r(m)));
    a.connection.send({ t: "close", sandboxId: "vd-x" });
    expect(await closed).toEqual({ t: "closed", sandboxId: "vd-x" });
    expect((await a.exited).reason).toBe("evicted");
    expect(d.running()).toEqual(["vd-y"]);
    expect(seen).toEqual([]);
    expect(isAlive(b.connection.pid!)).toBe(true);
  });

  it("reports usage: the volume's disk and the pool's shared memory", async () => {
    const d = driverWith(isolation, 1);
    const s = spec(d, "vd-usage");
    writeFileSync(join(s.volumeDir, "data.bin"), Buffer.alloc(200_000, 1));
    const sb = await d.start(s, egress);
    const usage = await sb.usage();
    expect(usage.diskBytes).toBeGreaterThanOrEqual(200_000);
    expect(usage.memoryBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(usage.pool).toEqual({ id: "pool-0", sandboxes: 1 });
    if (root && isolation === "bwrap") {
      // Root gateways run pools as their own uid: the volume was handed to it.
      const owner = statSync(join(s.volumeDir, "data.bin")).uid;
      expect(owner).not.toBe(0);
      expect(statSync(s.volumeDir).uid).toBe(owner);
    }
  });

  it.skipIf(!root || isolation !== "bwrap")(
    "gives a new (empty) volume to the pool's uid, and a used one with all its files",
    async () => {
      const d = driverWith(isolation, 1);
      const fresh = spec(d, "vd-fresh");
      const sb = await d.start(fresh, egress);
      const poolUid = statSync(`/proc/${sb.connection.pid}`).uid;
      expect(poolUid).not.toBe(0);
      expect(statSync(fresh.volumeDir).uid).toBe(poolUid);
      await d.stop("vd-fresh");
      // The host wrote into it meanwhile (a restore writes a new folder: walked again).
      const used = spec(d, "vd-used");
      mkdirSync(join(used.volumeDir, "sub"), { recursive: true });
      writeFileSync(join(used.volumeDir, "sub", "f.txt"), "x");
      await d.start(used, egress);
      for (const path of [used.volumeDir, join(used.volumeDir, "sub", "f.txt")])
        expect(statSync(path).uid).toBe(poolUid);
    },
  );

  it("ends every sandbox of a pool that dies, and restarts the pool on demand", async () => {
    const d = driverWith(isolation, 1);
    const members = await Promise.all(
      ["vd-p1", "vd-p2", "vd-p3"].map((id) => d.start(spec(d, id), egress)),
    );
    const pid = members[0]!.connection.pid!;
    process.kill(pid, "SIGKILL");
    const exits = await Promise.all(members.map((m) => m.exited));
    // Idle sandboxes were only evicted: no turn was running to blame.
    for (const e of exits) expect(e.reason).toBe("evicted");
    expect(d.running()).toEqual([]);
    const back = await d.start(spec(d, "vd-p1"), egress);
    expect(back.connection.pid).not.toBe(pid);
    expect(isAlive(back.connection.pid!)).toBe(true);
  });

  it("stops a pool process once its last sandbox has left (scale to zero)", async () => {
    const d = driverWith(isolation, 1, 50);
    const s = await d.start(spec(d, "vd-idle"), egress);
    const pid = s.connection.pid!;
    await d.stop("vd-idle");
    await eventually(async () => (d.pools()[0]!.running ? undefined : true));
    await eventually(async () => (isAlive(pid) ? undefined : true));
  });

  it("refuses a volume outside its volumes root", async () => {
    const d = driverWith(isolation, 1);
    const outside = join(dir, "elsewhere", "vd-out");
    mkdirSync(outside, { recursive: true });
    const s = { ...spec(d, "vd-out"), volumeDir: outside };
    await expect(d.start(s, egress)).rejects.toThrow(/must keep its volume/);
    expect(existsSync(outside)).toBe(true);
  });
});

describe.skipIf(process.platform !== "linux")("virtual driver probe", () => {
  it("reports agents as isolated and says how the pools are sandboxed", async () => {
    const d = driverWith("auto");
    const probe = await d.probe();
    expect(probe).toMatchObject({ driver: "virtual", ok: true, isolated: true });
    expect(probe.details.join("\n")).toMatch(/virtual shell/);
    expect(probe.details.join("\n")).toMatch(/bubblewrap|NOT sandboxed/);
  });
});
