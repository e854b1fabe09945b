import { dirname } from "node:path";
import { digest, errorMessage, LobuError, type Logger } from "@lobu/core";
import { settled } from "@lobu/core/best-effort";
import type {
  DriverProbe,
  EgressBinder,
  ExecCommand,
  ExecResult,
  SandboxDriver,
  SandboxInstance,
  SandboxSpec,
} from "./driver.ts";
import { UidAllocator } from "./identity.ts";
import { launcherFrom, type WorkerLauncher } from "./launcher.ts";
import { detectSetup, type Setup } from "./process/detect.ts";
import { type ExecOptions, execInSandbox } from "./process/exec.ts";
import { launchSandbox, rlimitArgs, runtimeBinds } from "./process/launch.ts";
import type { ProcessDriverOptions } from "./process/options.ts";
import { probeProcessDriver, runTrial } from "./process/probe.ts";
import { acquireResources, type UndoSteps, unwind } from "./process/resources.ts";
import {
  armWatchdogs,
  initAlive,
  type RunningSandbox,
  stopSandbox,
  superviseSandbox,
} from "./process/supervise.ts";
import { guardedStart } from "./starts.ts";
import type { QuotaMode } from "./volume.ts";

export type { ProcessDriverOptions } from "./process/options.ts";

/** What runs inside a sandbox instead of the worker (the probe's trial). */
interface WorkerOverride {
  argv: string[];
  extraRoBinds: string[];
}

/**
 * The `process` driver: one bubblewrap sandbox per conversation, with its own
 * uid, namespaces, cgroup limits, seccomp filter and disk quota. Detection,
 * launch, supervision, exec and the probe live in ./process/; this class keeps
 * the running sandboxes and starts each one at most once at a time.
 */
export class ProcessDriver implements SandboxDriver {
  readonly name = "process" as const;
  readonly launcher: WorkerLauncher;
  readonly #opts: ProcessDriverOptions;
  readonly #logger: Logger;
  readonly #uids: UidAllocator;
  readonly #running = new Map<string, RunningSandbox>();
  readonly #starting = new Map<string, Promise<unknown>>();
  #setup?: Promise<Setup>;
  /** After close(): nothing starts any more (a start racing the shutdown would leave its volume mounted). */
  #closed = false;
  #trialLock: Promise<unknown> = Promise.resolve();

  constructor(opts: ProcessDriverOptions) {
    this.#opts = opts;
    this.launcher = launcherFrom(opts.launcher, opts.logger);
    this.#logger = opts.logger ?? this.launcher.logger;
    this.#uids = new UidAllocator({ stateDir: opts.stateDir, uidBase: opts.uidBase ?? 200_000 });
  }

  /**
   * The sandbox's cgroup name. Sandbox ids derive from conversation keys, so two
   * installations on one host (or two test runs) share ids: the state dir tells
   * them apart, and creating one never drains the other's cgroup.
   */
  #cgroupName(id: string): string {
    return `${digest(this.#opts.stateDir, 8)}-${id}`;
  }

  /** Host paths shown read-only in every sandbox: the worker's runtime. */
  runtimeBinds(): string[] {
    return runtimeBinds(this.launcher, this.#opts);
  }

  /** Ids of the sandboxes running now. */
  running(): string[] {
    return [...this.#running.keys()];
  }

  /** Which disk quota mechanism is in use (after the first start or probe). */
  async quotaMode(): Promise<QuotaMode> {
    return (await this.#prepare()).quota;
  }

  #prepare(): Promise<Setup> {
    this.#setup ??= detectSetup(this.#opts, this.#logger);
    return this.#setup;
  }

  start(spec: SandboxSpec, egress: EgressBinder): Promise<SandboxInstance> {
    return this.#startOnce(spec, egress, false);
  }

  /**
   * Start a pool process for the virtual driver, sandboxed like any sandbox (own
   * uid, namespaces, no network, cgroup limits, seccomp) but with the parent of
   * every pooled volume (`spec.volumeDir`) mounted read-write at /volumes, an
   * egress socket bound to the pool's identity and `LOBU_WORKER_MODE=pool`. Each
   * pooled sandbox's disk quota is enforced inside the pool, not here.
   */
  startPool(spec: SandboxSpec, egress: EgressBinder): Promise<SandboxInstance> {
    return this.#startOnce(spec, egress, true);
  }

  /** Start `spec` unless it is running or starting already. */
  async #startOnce(
    spec: SandboxSpec,
    egress: EgressBinder,
    pool: boolean,
  ): Promise<SandboxInstance> {
    return guardedStart(
      spec.id,
      {
        closed: this.#closed,
        running: this.#running.has(spec.id),
        starting: this.#starting,
        kind: pool ? "pool" : "sandbox",
      },
      () => this.#start(spec, egress, pool),
    );
  }

  /** Acquire the sandbox's resources, launch it and supervise it; undo everything if that fails. */
  async #start(
    spec: SandboxSpec,
    egress: EgressBinder,
    pool: boolean,
    override?: WorkerOverride,
  ): Promise<SandboxInstance> {
    const setup = await this.#prepare();
    const undo: UndoSteps = [];
    const log = this.#logger.child({ sandboxId: spec.id });
    try {
      const resources = await acquireResources(
        {
          setup,
          uids: this.#uids,
          stateDir: this.#opts.stateDir,
          cgroupName: this.#cgroupName(spec.id),
          log,
        },
        spec,
        egress,
        pool,
        undo,
      );
      const launched = await launchSandbox(
        { setup, launcher: this.launcher, opts: this.#opts },
        { spec, resources, workerArgv: override?.argv, extraRoBinds: override?.extraRoBinds },
      );
      const rec = superviseSandbox(launched, {
        log,
        onGone: () => this.#running.delete(spec.id),
      });
      this.#running.set(spec.id, rec);
      armWatchdogs(rec, {
        setup,
        log,
        diskEveryMs: this.#opts.diskCheckIntervalMs ?? 10_000,
        memoryEveryMs: this.#opts.memoryCheckIntervalMs ?? 1000,
        stopForDiskFull: () => this.stop(spec.id, { graceMs: 2000, reason: "disk_full" }),
      });
      log.info(
        {
          uid: resources.meta.uid,
          pid: launched.worker.child.pid,
          cgroup: resources.cgroup?.path,
          quota: setup.quota,
        },
        "sandbox started",
      );
      return rec.instance;
    } catch (err) {
      await unwind(undo, log);
      throw err;
    }
  }

  async stop(id: string, opts: { graceMs?: number; reason?: string } = {}): Promise<void> {
    await settled(this.#starting.get(id));
    const rec = this.#running.get(id);
    if (!rec) return;
    rec.stopReason ??= opts.reason ?? "stopped";
    await stopSandbox(rec, opts.graceMs ?? this.#opts.stopGraceMs ?? 5000);
  }

  async exec(id: string, command: ExecCommand, opts: ExecOptions = {}): Promise<ExecResult> {
    const rec = this.#running.get(id);
    // (An init that has exited leaves a pid that may name another process's namespaces.)
    if (!rec?.initPid || !initAlive(rec))
      throw new LobuError("sandbox_not_running", `sandbox ${id} is not running`, {
        status: 404,
        hint: "Start it (send it a message) and try again.",
      });
    const setup = await this.#prepare();
    const target = {
      sandboxId: id,
      initPid: rec.initPid,
      uid: rec.meta.uid,
      gid: rec.meta.gid,
      procsFiles: rec.cgroup?.procsFiles ?? [],
      rlimits: rlimitArgs(setup, rec.spec.limits, this.#opts.maxOpenFiles),
      nodeDir: dirname(this.launcher.nodePath),
      packages: Boolean(this.#opts.packages) && !rec.pool,
    };
    return execInSandbox(setup, target, command, opts);
  }

  async probe(): Promise<DriverProbe> {
    return probeProcessDriver(this);
  }

  /** @internal for probe(): detection results without throwing. */
  async detectForProbe(): Promise<{ setup?: Setup; error?: string }> {
    try {
      return { setup: await this.#prepare() };
    } catch (err) {
      this.#setup = undefined;
      return {
        error: errorMessage(err) + (err instanceof LobuError && err.hint ? ` (${err.hint})` : ""),
      };
    }
  }

  /** The options this driver was made with. */
  get options(): Readonly<ProcessDriverOptions> {
    return this.#opts;
  }

  /**
   * @internal for probe(): start and stop a throwaway sandbox whose worker is
   * process/trial-worker.ts. Resolves with what went wrong, or undefined when all
   * worked. One trial at a time.
   */
  trial(): Promise<string | undefined> {
    const next = this.#trialLock.then(async () =>
      runTrial({
        setup: await this.#prepare(),
        stateDir: this.#opts.stateDir,
        nodePath: this.launcher.nodePath,
        maxOpenFiles: this.#opts.maxOpenFiles,
        start: (spec, egress, worker) => this.#start(spec, egress, false, worker),
        stop: (id, opts) => this.stop(id, opts),
        log: this.#logger,
      }),
    );
    this.#trialLock = settled(next);
    return next;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#starting.values()].map(settled));
    await Promise.all(
      this.running().map((id) => this.stop(id, { graceMs: 2000, reason: "stopped" })),
    );
  }
}

export function createProcessDriver(opts: ProcessDriverOptions): ProcessDriver {
  return new ProcessDriver(opts);
}
