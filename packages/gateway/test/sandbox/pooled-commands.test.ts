import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { SandboxInstance, SandboxSpec } from "../../src/sandbox/driver.ts";
import { createVirtualDriver, type VirtualDriver } from "../../src/sandbox/index.ts";
import { eventually, FIXTURE, probe, scratch, TestEgress, testLogger } from "./helpers.ts";

/** The command cgroups of sandbox `id` on this host (v1: one per hierarchy; v2: one). */
function commandCgroups(id: string): string[] {
  const found: string[] = [];
  const walk = (path: string, depth: number) => {
    if (depth > 3) return;
    let entries: string[];
    try {
      entries = readdirSync(path, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const name of entries) {
      if (name.endsWith(`-cmd-${id}`)) found.push(join(path, name));
      else walk(join(path, name), depth + 1);
    }
  };
  walk("/sys/fs/cgroup", 0);
  return found;
}

/**
 * The gateway side of the pooled process tier: what a pool may ask of the
 * gateway with `tool_exec`. The pool here is the attacker fixture (a hostile
 * pool process speaking the real protocol); the command sandboxes are real.
 */

interface ExecReport {
  exitCode?: number | null;
  stdout?: string;
  stderr?: string;
  timedOut?: boolean;
  error?: string;
  unanswered?: boolean;
}

describe.skipIf(process.platform !== "linux")("pooled process tier: command sandboxes", () => {
  const { dir, cleanup } = scratch("lobu-pooled-");
  const egress = new TestEgress(dir);
  const drivers: VirtualDriver[] = [];

  const driver = (commands: boolean): VirtualDriver => {
    const n = drivers.length;
    const d = createVirtualDriver({
      stateDir: join(dir, `state-${n}`),
      volumesRoot: join(dir, `volumes-${n}`),
      poolSize: 1,
      isolation: commands ? "bwrap" : "none",
      launcher: { entry: FIXTURE },
      logger: testLogger(),
      process: { uidBase: 352_000 + n * 1000, cgroup: { name: `lobu-pooled-${n}` } },
      ...(commands ? { commandSandboxes: {} } : {}),
    });
    drivers.push(d);
    return d;
  };

  const start = (d: VirtualDriver, id: string): Promise<SandboxInstance> => {
    const volumeDir = join(dir, `volumes-${drivers.indexOf(d)}`, id);
    mkdirSync(volumeDir, { recursive: true });
    const spec: SandboxSpec = {
      id,
      key: { agentId: "a", platform: "test", userId: id, channelId: "c" },
      volumeDir,
      limits: { memoryMb: 256, cpus: 1, pids: 64, diskMb: 32 },
      env: {},
    };
    return d.start(spec, egress);
  };

  /** The pooled driver and its first sandbox, shared by the tests below the first. */
  let pooled: VirtualDriver;
  let a: SandboxInstance;

  const exec = (s: SandboxInstance, p: Record<string, unknown>) =>
    probe<ExecReport>(s, { op: "tool_exec", ...p });

  afterAll(async () => {
    await Promise.all(drivers.map((d) => d.close()));
    await egress.close();
    cleanup();
  });

  it("runs nothing for a plain virtual pool", async () => {
    const d = driver(false);
    const a = await start(d, "plain-a");
    const report = await exec(a, { command: "id" });
    expect(report.error).toMatch(/runs no commands/);
    expect(report.exitCode).toBeNull();
  });

  it("runs a pool's command in its sandbox's own bwrap sandbox, over its volume", async () => {
    pooled = driver(true);
    a = await start(pooled, "cmd-a");
    const report = await exec(a, {
      command: "echo from-a > made.txt; ls; echo PIDS=$(ls /proc | grep -cE '^[0-9]+$'); id -u",
    });
    expect(report.exitCode).toBe(0);
    expect(report.stdout).toContain("made.txt");
    expect(Number(/PIDS=(\d+)/.exec(report.stdout ?? "")?.[1] ?? 99)).toBeLessThan(10);
    expect(/^(\d+)$/m.exec(report.stdout ?? "")?.[1]).not.toBe("0");
    expect(readFileSync(join(dir, "volumes-1", "cmd-a", "made.txt"), "utf8")).toBe("from-a\n");
    // Between commands the conversation holds nothing: its command cgroup is gone.
    await eventually(async () => (commandCgroups("cmd-a").length === 0 ? true : undefined));
  });

  it("refuses commands for a pool member without a running turn, and for sandboxes not on the pool", async () => {
    await start(pooled, "cmd-b");
    const idle = await exec(a, { sandboxId: "cmd-b", command: "ls" });
    expect(idle.error).toMatch(/no turn/);
    const foreign = await exec(a, { sandboxId: "not-on-this-pool", command: "ls", waitMs: 1500 });
    expect(foreign.unanswered).toBe(true);
  });

  it("keeps the sandbox's own PATH, HOME, identity and loader whatever the pool sends", async () => {
    const report = await exec(a, {
      command: 'echo "P=$PATH H=$HOME I=$LOBU_SANDBOX_ID L=$LD_PRELOAD F=$FOO"',
      env: {
        PATH: "/evil",
        HOME: "/",
        LOBU_SANDBOX_ID: "cmd-b",
        LD_PRELOAD: "/x.so",
        FOO: "bar",
      },
    });
    expect(report.stdout).toMatch(/^P=\S+:\/usr\/bin:\/bin H=\/workspace I=cmd-a L= F=bar$/m);
  });

  it("stops a command at its deadline", async () => {
    const report = await exec(a, { command: "sleep 60", timeoutMs: 300 });
    expect(report.timedOut).toBe(true);
    expect(report.exitCode).toBeNull();
  });
});
