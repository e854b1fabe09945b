import { constants as osConstants } from "node:os";
import type { Logger } from "@lobu/core";
import type { ExitInfo, SandboxInstance, SandboxUsage } from "../driver.ts";
import {
  descendants,
  processTable,
  signalPids,
  signalSame,
  startTicks,
  treeUsage,
} from "../proc.ts";
import { volumeUsage } from "../volume.ts";
import type { Setup } from "./detect.ts";
import type { LaunchedSandbox } from "./launch.ts";
import { MiB } from "./options.ts";
import { releaseResources } from "./resources.ts";

/** A launched sandbox under supervision. */
export interface Supervised extends LaunchedSandbox {
  /** Why the gateway ended it (stop, OOM or quota watchdog), once it did. */
  stopReason?: string;
  /** Watchdogs, cleared when it exits. */
  timers: NodeJS.Timeout[];
  /** The `watch` quota's last measurement of the volume. */
  lastDisk?: { at: number; bytes: number };
}

/** A running sandbox: supervised, and the instance the gateway talks to. */
export interface RunningSandbox extends Supervised {
  instance: SandboxInstance;
}

export interface SuperviseDeps {
  log: Logger;
  /** Called once the sandbox has exited and its resources are released. */
  onGone: () => void;
}

/**
 * Take a launched sandbox under supervision: its instance reports how it ended
 * (once its resources are released) and measures its usage.
 */
export function superviseSandbox(launched: LaunchedSandbox, deps: SuperviseDeps): RunningSandbox {
  const rec: Supervised = { ...launched, timers: [] };
  const instance: SandboxInstance = {
    id: rec.spec.id,
    driver: "process",
    startedAt: Date.now(),
    connection: rec.worker.connection,
    exited: exitOf(rec, deps),
    usage: () => sandboxUsage(rec),
  };
  return Object.assign(rec, { instance });
}

/** How the sandbox ended, once it has: stops its watchdogs, releases its resources and logs. */
async function exitOf(rec: Supervised, deps: SuperviseDeps): Promise<ExitInfo> {
  const { log } = deps;
  const raw = await rec.worker.exited;
  for (const t of rec.timers) clearInterval(t);
  const oom = rec.cgroup ? (await rec.cgroup.oomKills().catch(() => 0)) > 0 : false;
  const info = exitInfo(raw, { oom, stopReason: rec.stopReason });
  // Normally gone by now: the outer bwrap exited. Never a blind kill of its pid.
  if (rec.initPid) signalSame(rec.initPid, rec.initStart, "SIGKILL");
  await releaseResources(rec, log);
  deps.onGone();
  if (info.reason === "crashed" || info.reason === "oom")
    log.warn({ ...info, output: rec.worker.output.tail().slice(-10) }, "sandbox worker died");
  else log.info(info, "sandbox stopped");
  return info;
}

/**
 * Why the sandbox ended: the gateway's own reason when it stopped it, `oom`
 * when the cgroup killed for memory and the worker did not exit cleanly, else
 * `stopped` or `crashed` by exit status. bwrap reports a child killed by
 * signal N as exit code 128+N: that is reported as the signal.
 */
export function exitInfo(
  raw: { code: number | null; signal: string | null },
  seen: { oom: boolean; stopReason?: string },
): ExitInfo {
  let signal = raw.signal;
  let code = raw.code;
  if (signal === null && code !== null && code > 128) {
    const number = code - 128;
    const name = Object.entries(osConstants.signals).find(([, n]) => n === number)?.[0];
    if (name) {
      signal = name;
      code = null;
    }
  }
  const reason =
    seen.stopReason ??
    (seen.oom && (signal !== null || code !== 0) ? "oom" : code === 0 ? "stopped" : "crashed");
  return { code, signal, reason };
}

async function sandboxUsage(rec: Supervised): Promise<SandboxUsage> {
  const out: SandboxUsage = {};
  if (rec.cgroup) Object.assign(out, await rec.cgroup.usage());
  if ((out.memoryBytes === undefined || out.pids === undefined) && rec.initPid) {
    const tree = await treeUsage(rec.initPid);
    out.memoryBytes ??= tree.memoryBytes;
    out.pids ??= tree.pids;
  }
  // A pool's volumes are measured per pooled sandbox by the virtual driver.
  if (rec.pool) return out;
  const fresh = rec.lastDisk && Date.now() - rec.lastDisk.at < 5000;
  out.diskBytes = fresh ? rec.lastDisk!.bytes : await volumeUsage(rec.volumeDir, rec.quota);
  return out;
}

/** The sandbox's init is still the process it was (not exited, its pid not reused). */
export function initAlive(rec: LaunchedSandbox): boolean {
  return rec.initPid !== undefined && startTicks(rec.initPid) === rec.initStart;
}

/**
 * SIGKILL the sandbox. Its init goes first: the kernel then kills everything in
 * its pid namespace and the outer bwrap exits after reaping it (killing that
 * first would orphan the init to the host's pid 1).
 */
export async function killSandbox(rec: LaunchedSandbox): Promise<void> {
  if (rec.initPid && signalSame(rec.initPid, rec.initStart, "SIGKILL")) {
    const gone = await Promise.race([
      rec.worker.exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 2000)),
    ]);
    if (gone) return;
  }
  rec.worker.child.kill("SIGKILL");
  await rec.cgroup?.kill("SIGKILL");
}

/**
 * Stop a sandbox, escalating: ask the worker to shut down, then SIGTERM
 * everything inside after `graceMs`, then SIGKILL. Resolves once it has exited.
 */
export async function stopSandbox(rec: RunningSandbox, graceMs: number): Promise<void> {
  const exited = rec.instance.exited;
  const within = (ms: number) =>
    Promise.race([
      exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), ms)),
    ]);
  if (graceMs > 0 && rec.worker.connection.open) {
    rec.worker.connection.send({ t: "shutdown" });
    if (await within(graceMs)) return;
    // Ask everything inside (not bwrap itself: it would take the sandbox down at once).
    if (rec.initPid && initAlive(rec)) {
      const inside = descendants(await processTable(), rec.initPid).filter(
        (e) => e.pid !== rec.initPid,
      );
      signalPids(
        inside.map((e) => e.pid),
        "SIGTERM",
      );
      if (await within(Math.min(2000, graceMs))) return;
    }
  }
  await killSandbox(rec);
  await exited;
}

export interface WatchdogDeps {
  setup: Setup;
  log: Logger;
  /** Period of the `watch` disk quota check. */
  diskEveryMs: number;
  /** Period of the memory check where no cgroup controller enforces memory. */
  memoryEveryMs: number;
  /** Stop the sandbox because its volume is over quota (the driver's stop(), reason `disk_full`). */
  stopForDiskFull: () => Promise<void>;
}

/**
 * Limits nothing in the kernel enforces: the `watch` disk quota (stop when the
 * volume is over it) and, without a cgroup memory controller, memory (kill).
 */
export function armWatchdogs(rec: Supervised, deps: WatchdogDeps): void {
  const { limits } = rec.spec;
  const { log } = deps;
  if (deps.setup.quota === "watch" && !rec.pool) {
    rec.timers.push(
      everyUnlessBusy(deps.diskEveryMs, async () => {
        if (rec.stopReason) return;
        const bytes = await volumeUsage(rec.volumeDir, "watch");
        if (bytes === undefined) return;
        rec.lastDisk = { at: Date.now(), bytes };
        if (bytes > limits.diskMb * MiB) {
          log.warn({ bytes, limitMb: limits.diskMb }, "sandbox volume over its quota: stopping it");
          await deps.stopForDiskFull();
        }
      }),
    );
  }
  const enforced = deps.setup.cgroups?.controllers ?? [];
  if (!enforced.includes("memory") && rec.initPid) {
    rec.timers.push(
      everyUnlessBusy(deps.memoryEveryMs, async () => {
        if (rec.stopReason || !rec.initPid) return;
        const { memoryBytes } = await treeUsage(rec.initPid);
        if (memoryBytes > limits.memoryMb * MiB) {
          log.warn(
            { memoryBytes, limitMb: limits.memoryMb },
            "sandbox over its memory limit: killing it",
          );
          rec.stopReason = "oom";
          await killSandbox(rec);
        }
      }),
    );
  }
}

/** Run `check` every `ms`, skipping a tick while the previous check still runs. */
function everyUnlessBusy(ms: number, check: () => Promise<void>): NodeJS.Timeout {
  let busy = false;
  return setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      await check();
    } finally {
      busy = false;
    }
  }, ms);
}
