import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, realpath, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { constants as osConstants } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { digest, errorMessage, LobuError, type Logger } from "@lobu/core";
import {
  bwrapArgs,
  etcFiles,
  isUnder,
  normalizeBinds,
  POOL_VOLUMES,
  pathsToHide,
  SANDBOX_CA_BUNDLE,
  SANDBOX_EGRESS_SOCKET,
  SANDBOX_WORKSPACE,
  stageArgv,
  wrapperArgv,
} from "./bwrap.ts";
import {
  type CgroupManager,
  type CgroupOptions,
  detectCgroups,
  type SandboxCgroup,
} from "./cgroups.ts";
import { HELPER_ENV, isRoot, run, which } from "./commands.ts";
import type { ChannelConnection } from "./connection.ts";
import type {
  DriverProbe,
  EgressBinder,
  EgressBinding,
  ExecCommand,
  ExecResult,
  ExitInfo,
  SandboxDriver,
  SandboxInstance,
  SandboxSpec,
  SandboxUsage,
} from "./driver.ts";
import { checkSandboxId, workerEnv } from "./env.ts";
import { UidAllocator, type VolumeMeta, writeVolumeMeta } from "./identity.ts";
import {
  type LaunchedWorker,
  launcherFrom,
  type WorkerLaunchConfig,
  type WorkerLauncher,
} from "./launcher.ts";
import {
  descendants,
  processTable,
  signalPids,
  signalSame,
  startTicks,
  treeUsage,
} from "./proc.ts";
import { probeProcessDriver } from "./process-probe.ts";
import { seccompProgram } from "./seccomp.ts";
import {
  adoptVolumeFiles,
  loopQuotaSupport,
  mountLoopVolume,
  type QuotaMode,
  unmount,
  volumeUsage,
} from "./volume.ts";

const MiB = 1024 * 1024;

export interface ProcessDriverOptions {
  /** Driver-private directory (root-only): uid table, staging mounts. */
  stateDir: string;
  /** How workers are started (a launcher, or its config). */
  launcher?: WorkerLauncher | WorkerLaunchConfig;
  logger?: Logger;
  /** bwrap binary (default: found in PATH). */
  bwrapPath?: string;
  /** First uid/gid handed to sandboxes (default 200000). */
  uidBase?: number;
  /** Disk quota mechanism: `auto` (default) picks `loop` when usable, else `watch`. */
  quota?: "auto" | QuotaMode;
  /** Watchdog period for the `watch` quota (default 10 s). */
  diskCheckIntervalMs?: number;
  /** Watchdog period for memory/pids when no cgroup controller enforces them (default 1 s). */
  memoryCheckIntervalMs?: number;
  /** cgroup placement, or `false` to not use cgroups (limits then fall back to rlimits and polling). */
  cgroup?: CgroupOptions | false;
  /** Size of the sandbox's /tmp tmpfs in MB (default: a quarter of its memory, at least 16). */
  tmpMb?: number;
  /** More host paths to show read-only at the same path (e.g. a toolchain in /opt). */
  extraRoBinds?: string[];
  /** CA bundle the worker's tools trust; shown read-only at SANDBOX_CA_BUNDLE. */
  caBundle?: string;
  /**
   * Host paths never to show even when under a bound path (the gateway's data
   * dir, config file...). The state dir and each volume's parent are always hidden.
   */
  hidePaths?: string[];
  /** RLIMIT_NOFILE for sandboxes (default 4096). */
  maxOpenFiles?: number;
  /** Default grace between `shutdown` and SIGTERM in stop() (default 5 s). */
  stopGraceMs?: number;
  /**
   * Root only: an empty host directory, traversable by everyone, that each sandbox
   * privately mounts its staging tmpfs on (default /run/lobu-sandbox).
   */
  stageDir?: string;
  /** Deny risky kernel interfaces with a seccomp filter (default true; see seccomp.ts). */
  seccomp?: boolean;
  /** Give the worker's V8 heap this share of the memory limit (default 0.75; 0 to leave node's default). */
  heapFraction?: number;
}

/** What the driver found on this host (see #detect). */
export interface Setup {
  bwrap: string;
  shell: string;
  setpriv?: string;
  prlimit?: string;
  nsenter?: string;
  nsenterUserParent: boolean;
  unshare?: string;
  /** Root only: empty world-traversable host dir each sandbox mounts its staging tmpfs on. */
  stageDir?: string;
  root: boolean;
  disableUserns: boolean;
  tmpSize: boolean;
  cgroups?: CgroupManager;
  cgroupDetails: string[];
  quota: QuotaMode;
  quotaDetail: string;
  seccomp?: Buffer;
}

interface Running {
  spec: SandboxSpec;
  instance: SandboxInstance;
  launched: LaunchedWorker;
  meta: VolumeMeta;
  volumeDir: string;
  cgroup?: SandboxCgroup;
  binding: EgressBinding;
  /** Host pid of the sandbox's pid 1 (bwrap's init), from --info-fd. */
  initPid?: number;
  /** Its start time: once the init has exited, its pid may belong to any other process. */
  initStart?: number;
  quota: QuotaMode;
  /** A pool process of the virtual driver: all volumes mounted, no disk quota of its own. */
  pool: boolean;
  stopReason?: string;
  timers: NodeJS.Timeout[];
  lastDisk?: { at: number; bytes: number };
}

export class ProcessDriver implements SandboxDriver {
  readonly name = "process" as const;
  readonly launcher: WorkerLauncher;
  readonly #opts: ProcessDriverOptions;
  readonly #logger: Logger;
  readonly #uids: UidAllocator;
  readonly #running = new Map<string, Running>();
  readonly #starting = new Map<string, Promise<unknown>>();
  #setup?: Promise<Setup>;
  /** After close(): nothing starts any more (a start racing the shutdown would leave its volume mounted). */
  #closed = false;

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
    const launcher = this.launcher;
    return normalizeBinds([
      ...launcher.runtimeDirs,
      dirname(launcher.entry),
      dirname(launcher.nodePath),
      ...(this.#opts.extraRoBinds ?? []),
    ]);
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
    this.#setup ??= this.#detect();
    return this.#setup;
  }

  async #detect(): Promise<Setup> {
    if (process.platform !== "linux")
      throw new LobuError("sandbox_unavailable", "the process sandbox driver needs Linux", {
        status: 500,
        hint: 'Use sandbox.driver = "virtual" on this host, or run the gateway on Linux.',
      });
    const bwrap = which(this.#opts.bwrapPath ?? "bwrap");
    if (!bwrap)
      throw new LobuError("sandbox_unavailable", "bubblewrap (bwrap) is not installed", {
        status: 500,
        hint: "Install it: apt-get install -y bubblewrap (dnf/apk: bubblewrap), then run `lobu doctor`.",
      });
    const root = isRoot();
    const help = await run(bwrap, ["--help"]);
    const setpriv = which("setpriv");
    const unshare = which("unshare");
    const nsenter = which("nsenter");
    if (root && (!setpriv || !unshare || !which("mount")))
      throw new LobuError(
        "sandbox_unavailable",
        "setpriv, unshare or mount (util-linux) is missing",
        {
          status: 500,
          hint: "Install util-linux and mount (apt-get install -y util-linux mount).",
        },
      );
    const stageDir = root ? await makeStageDir(this.#opts.stageDir) : undefined;
    await mkdir(this.#opts.stateDir, { recursive: true, mode: 0o700 });
    const detection =
      this.#opts.cgroup === false
        ? { details: ["cgroups disabled by configuration"] }
        : await detectCgroups(this.#opts.cgroup ?? {});
    const wanted = this.#opts.quota ?? "auto";
    let quota: QuotaMode = "watch";
    let quotaDetail = "disk quota: du watchdog (soft limit) plus RLIMIT_FSIZE";
    if (wanted !== "watch") {
      const loop = await loopQuotaSupport(this.#opts.stateDir);
      if (loop.ok) {
        quota = "loop";
        quotaDetail = loop.detail;
      } else if (wanted === "loop") {
        throw new LobuError("sandbox_unavailable", loop.detail, {
          status: 500,
          hint: "Set the quota to auto or watch, or fix the loop device setup.",
        });
      } else quotaDetail = `${loop.detail}`;
    }
    const setup: Setup = {
      bwrap,
      shell: which("bash") ?? "/bin/sh",
      setpriv,
      prlimit: which("prlimit"),
      nsenter,
      nsenterUserParent: nsenter
        ? (await run(nsenter, ["--help"])).stdout.includes("--user-parent")
        : false,
      unshare,
      stageDir,
      root,
      disableUserns: help.stdout.includes("--disable-userns"),
      tmpSize: help.stdout.includes("--size"),
      cgroups: detection.manager,
      cgroupDetails: detection.details,
      quota,
      quotaDetail,
      seccomp: this.#opts.seccomp === false ? undefined : seccompProgram(),
    };
    this.#logger.info(
      {
        bwrap,
        root,
        cgroup: setup.cgroups ? `v${setup.cgroups.version}` : "none",
        quota,
        disableUserns: setup.disableUserns,
      },
      "process sandbox driver ready",
    );
    return setup;
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
    checkSandboxId(spec.id);
    if (this.#closed)
      throw new LobuError("sandbox_driver_closed", "the gateway is shutting down", {
        status: 503,
        hint: "Send the message again once the gateway is back.",
      });
    if (this.#running.has(spec.id) || this.#starting.has(spec.id))
      throw new LobuError(
        "sandbox_running",
        `${pool ? "pool" : "sandbox"} ${spec.id} is already running`,
        { status: 409, hint: "Stop it first." },
      );
    const starting = this.#start(spec, egress, undefined, pool);
    this.#starting.set(spec.id, starting);
    try {
      return await starting;
    } finally {
      this.#starting.delete(spec.id);
    }
  }

  async #start(
    spec: SandboxSpec,
    egress: EgressBinder,
    workerArgv: string[] | undefined,
    pool: boolean,
  ): Promise<SandboxInstance> {
    const setup = await this.#prepare();
    const undo: Array<() => Promise<unknown>> = [];
    const log = this.#logger.child({ sandboxId: spec.id });
    try {
      const volumeDir = await realpath(spec.volumeDir);
      let { meta, fresh } = await this.#uids.forVolume(spec.volumeDir);
      if (setup.quota === "loop" && !pool) {
        const mounted = await mountLoopVolume({
          volumeDir: spec.volumeDir,
          meta,
          diskMb: spec.limits.diskMb,
          stateDir: this.#opts.stateDir,
          logger: log,
        });
        undo.push(() => unmount(volumeDir, log));
        if (mounted.imageMb !== meta.imageMb) await writeVolumeMeta(spec.volumeDir, mounted);
        meta = mounted;
      }
      if (setup.root) {
        // Files the gateway put in the volume (or all of them, for a volume new to
        // this uid) must belong to the sandbox so the agent can change them.
        if (setup.quota === "watch" || fresh || pool)
          await adoptVolumeFiles(volumeDir, meta.uid, meta.gid);
        await chown(volumeDir, meta.uid, meta.gid);
        await chmod(volumeDir, 0o700);
      }

      const binding = await egress.bind(
        pool ? { kind: "pool", poolId: spec.id } : { kind: "sandbox", sandboxId: spec.id },
      );
      undo.push(() => binding.close());
      if (setup.root) await chown(binding.socketPath, meta.uid, meta.gid);

      const cgroup = setup.cgroups
        ? await setup.cgroups.create(this.#cgroupName(spec.id), spec.limits)
        : undefined;
      if (cgroup) undo.push(() => cgroup.destroy());

      const launched = await this.#launch(
        setup,
        spec,
        meta,
        volumeDir,
        binding,
        cgroup,
        workerArgv,
        pool,
      );
      const initPid = await launched.initPid;
      const initStart = initPid ? startTicks(initPid) : undefined;
      const rec: Running = {
        spec,
        launched: launched.worker,
        meta,
        volumeDir,
        cgroup,
        binding,
        initPid,
        initStart,
        quota: setup.quota,
        pool,
        timers: [],
        instance: undefined as unknown as SandboxInstance,
      };
      rec.instance = this.#instance(rec, setup, log);
      this.#running.set(spec.id, rec);
      this.#watch(rec, setup, log);
      log.info(
        { uid: meta.uid, pid: launched.worker.child.pid, cgroup: cgroup?.path, quota: setup.quota },
        "sandbox started",
      );
      return rec.instance;
    } catch (err) {
      for (const step of undo.reverse()) {
        await step().catch((e) => log.warn({ err: errorMessage(e) }, "cleanup after failed start"));
      }
      throw err;
    }
  }

  async #launch(
    setup: Setup,
    spec: SandboxSpec,
    meta: VolumeMeta,
    volumeDir: string,
    binding: EgressBinding,
    cgroup: SandboxCgroup | undefined,
    workerArgv: string[] | undefined,
    pool: boolean,
  ): Promise<{ worker: LaunchedWorker; initPid: Promise<number | undefined> }> {
    const launcher = this.launcher;
    const nodeDir = dirname(launcher.nodePath);
    const roBinds = this.runtimeBinds();
    const hide = pathsToHide(
      [this.#opts.stateDir, dirname(volumeDir), ...(this.#opts.hidePaths ?? [])],
      roBinds,
    );
    // An extra bind inside a hidden path (the CA bundle in a data dir under the
    // runtime) was folded into its parent: bind it again, above the hiding tmpfs.
    for (const extra of normalizeBinds(this.#opts.extraRoBinds ?? []))
      if (hide.some((h) => isUnder(extra, h)) && !roBinds.includes(extra)) roBinds.push(extra);
    const env = workerEnv(
      spec,
      { PATH: `${nodeDir}:/usr/local/bin:/usr/bin:/bin`, HOME: pool ? "/tmp" : SANDBOX_WORKSPACE },
      pool
        ? {
            LOBU_EGRESS_SOCKET: SANDBOX_EGRESS_SOCKET,
            LOBU_WORKER_MODE: "pool",
            LOBU_VOLUMES_ROOT: POOL_VOLUMES,
          }
        : { LOBU_EGRESS_SOCKET: SANDBOX_EGRESS_SOCKET, LOBU_VOLUME: SANDBOX_WORKSPACE },
    );
    if (this.#opts.caBundle) env.LOBU_CA_BUNDLE = SANDBOX_CA_BUNDLE;
    const etc = etcFiles(
      meta.uid,
      meta.gid,
      setup.shell.endsWith("bash") ? "/bin/bash" : "/bin/sh",
    );
    const fds = { info: 4, firstData: 5 };
    // Root: bwrap (as the sandbox uid) reads its sources from a private staging
    // tmpfs (see STAGE_SCRIPT); otherwise straight from their host paths.
    const staged = setup.root ? setup.stageDir : undefined;
    const source = (path: string, name: string) => (staged ? join(staged, name) : path);
    const stageSources = [
      { source: volumeDir, name: "workspace" },
      { source: binding.socketPath, name: "egress.sock" },
      ...(this.#opts.caBundle ? [{ source: this.#opts.caBundle, name: "ca-bundle.pem" }] : []),
      ...roBinds.map((path, i) => ({ source: path, name: `rt${i}` })),
    ];
    const layout = bwrapArgs({
      uid: setup.root ? undefined : meta.uid,
      gid: setup.root ? undefined : meta.gid,
      disableUserns: setup.disableUserns,
      roBinds: roBinds.map((path, i) => ({ source: source(path, `rt${i}`), dest: path })),
      hide,
      volumeSource: source(volumeDir, "workspace"),
      volumeDest: pool ? POOL_VOLUMES : SANDBOX_WORKSPACE,
      egressSource: source(binding.socketPath, "egress.sock"),
      ...(this.#opts.caBundle
        ? { caBundleSource: source(this.#opts.caBundle, "ca-bundle.pem") }
        : {}),
      etc,
      seccomp: setup.seccomp,
      tmpBytes: setup.tmpSize
        ? (this.#opts.tmpMb ?? Math.max(16, Math.floor(spec.limits.memoryMb / 4))) * MiB
        : undefined,
      env,
      fds,
    });
    const heapFraction = this.#opts.heapFraction ?? 0.75;
    const heapFlags =
      heapFraction > 0 && !launcher.nodeArgs.some((a) => a.startsWith("--max-old-space-size"))
        ? [`--max-old-space-size=${Math.max(32, Math.floor(spec.limits.memoryMb * heapFraction))}`]
        : [];
    const inner = workerArgv ?? [...this.#rlimits(setup, spec), ...launcher.workerArgv(heapFlags)];
    const sandboxed = [setup.bwrap, ...layout.args, "--", ...inner];
    const command = staged
      ? stageArgv(
          setup.unshare!,
          setup.shell,
          staged,
          stageSources,
          [
            setup.setpriv!,
            `--reuid=${meta.uid}`,
            `--regid=${meta.gid}`,
            "--clear-groups",
            "--",
            ...sandboxed,
          ],
          pool ? volumeDir : dirname(volumeDir),
        )
      : sandboxed;
    const keepFd = fds.firstData + layout.data.length - 1;

    let resolveInit: (pid: number | undefined) => void = () => {};
    const initPid = new Promise<number | undefined>((r) => {
      resolveInit = r;
    });
    const worker = await launcher.launch({
      sandboxId: spec.id,
      command: setup.shell,
      args: wrapperArgv(keepFd, cgroup?.procsFiles ?? [], command),
      env: HELPER_ENV,
      cwd: "/",
      extraFds: ["pipe", ...layout.data.map(() => "pipe" as const)],
      onSpawn: (child) => {
        layout.data.forEach((content, i) => {
          const pipe = child.stdio[fds.firstData + i] as NodeJS.WritableStream | null;
          // (Binary for the seccomp program, text for the /etc files.)
          pipe?.end(content);
        });
        readInfo(child.stdio[fds.info] as Readable | null, resolveInit);
      },
    });
    return { worker, initPid };
  }

  #rlimits(setup: Setup, spec: SandboxSpec): string[] {
    if (!setup.prlimit) return [];
    const nofile = this.#opts.maxOpenFiles ?? 4096;
    const fsize = spec.limits.diskMb * MiB;
    // Applied inside the sandbox, after its user namespaces exist, so RLIMIT_NPROC
    // counts this sandbox's processes only (per user namespace), not the host uid's.
    return [
      setup.prlimit,
      `--nofile=${nofile}:${nofile}`,
      "--core=0:0",
      `--fsize=${fsize}:${fsize}`,
      `--nproc=${spec.limits.pids}:${spec.limits.pids}`,
      "--",
    ];
  }

  #instance(rec: Running, setup: Setup, log: Logger): SandboxInstance {
    const connection: ChannelConnection = rec.launched.connection;
    const exited = rec.launched.exited.then(async ({ code, signal }) => {
      for (const t of rec.timers) clearInterval(t);
      const oom = rec.cgroup ? (await rec.cgroup.oomKills().catch(() => 0)) > 0 : false;
      // bwrap reports a child killed by signal N as exit code 128+N.
      let sig = signal as string | null;
      let exitCode = code;
      if (sig === null && code !== null && code > 128) {
        const name = Object.entries(osConstants.signals).find(([, n]) => n === code - 128)?.[0];
        if (name) {
          sig = name;
          exitCode = null;
        }
      }
      const reason =
        rec.stopReason ??
        (oom && (sig !== null || exitCode !== 0) ? "oom" : exitCode === 0 ? "stopped" : "crashed");
      await this.#cleanup(rec, log);
      const info: ExitInfo = { code: exitCode, signal: sig, reason };
      if (reason === "crashed" || reason === "oom")
        log.warn({ ...info, output: rec.launched.output.tail().slice(-10) }, "sandbox worker died");
      else log.info(info, "sandbox stopped");
      return info;
    });
    return {
      id: rec.spec.id,
      driver: "process",
      startedAt: Date.now(),
      connection,
      exited,
      usage: () => this.#usage(rec, setup),
    };
  }

  /** The sandbox's init is still the process it was (not exited, its pid not reused). */
  #initAlive(rec: Running): boolean {
    return rec.initPid !== undefined && startTicks(rec.initPid) === rec.initStart;
  }

  async #cleanup(rec: Running, log: Logger): Promise<void> {
    // Normally gone by now: the outer bwrap exited. Never a blind kill of its pid.
    if (rec.initPid) signalSame(rec.initPid, rec.initStart, "SIGKILL");
    const steps: Array<[string, () => Promise<unknown>]> = [
      ["cgroup", async () => rec.cgroup?.destroy()],
      [
        "volume",
        async () => (rec.quota === "loop" && !rec.pool ? unmount(rec.volumeDir, log) : undefined),
      ],
      ["egress", () => rec.binding.close()],
    ];
    for (const [what, step] of steps) {
      await step().catch((err) =>
        log.warn({ err: errorMessage(err), what }, "sandbox cleanup failed"),
      );
    }
    this.#running.delete(rec.spec.id);
  }

  #watch(rec: Running, setup: Setup, log: Logger): void {
    const { limits } = rec.spec;
    if (setup.quota === "watch" && !rec.pool) {
      const every = this.#opts.diskCheckIntervalMs ?? 10_000;
      let busy = false;
      rec.timers.push(
        setInterval(async () => {
          if (busy || rec.stopReason) return;
          busy = true;
          try {
            const bytes = await volumeUsage(rec.volumeDir, "watch");
            if (bytes === undefined) return;
            rec.lastDisk = { at: Date.now(), bytes };
            if (bytes > limits.diskMb * MiB) {
              log.warn(
                { bytes, limitMb: limits.diskMb },
                "sandbox volume over its quota: stopping it",
              );
              await this.stop(rec.spec.id, { graceMs: 2000, reason: "disk_full" });
            }
          } finally {
            busy = false;
          }
        }, every),
      );
    }
    const enforced = setup.cgroups?.controllers ?? [];
    if (!enforced.includes("memory") && rec.initPid) {
      const every = this.#opts.memoryCheckIntervalMs ?? 1000;
      let busy = false;
      rec.timers.push(
        setInterval(async () => {
          if (busy || rec.stopReason || !rec.initPid) return;
          busy = true;
          try {
            const { memoryBytes } = await treeUsage(rec.initPid);
            if (memoryBytes > limits.memoryMb * MiB) {
              log.warn(
                { memoryBytes, limitMb: limits.memoryMb },
                "sandbox over its memory limit: killing it",
              );
              rec.stopReason = "oom";
              await this.#kill(rec);
            }
          } finally {
            busy = false;
          }
        }, every),
      );
    }
  }

  async #usage(rec: Running, setup: Setup): Promise<SandboxUsage> {
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
    out.diskBytes = fresh ? rec.lastDisk!.bytes : await volumeUsage(rec.volumeDir, setup.quota);
    return out;
  }

  /**
   * SIGKILL the sandbox. Its init goes first: the kernel then kills everything in
   * its pid namespace and the outer bwrap exits after reaping it (killing that
   * first would orphan the init to the host's pid 1).
   */
  async #kill(rec: Running): Promise<void> {
    if (rec.initPid && signalSame(rec.initPid, rec.initStart, "SIGKILL")) {
      const gone = await Promise.race([
        rec.launched.exited.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 2000)),
      ]);
      if (gone) return;
    }
    rec.launched.child.kill("SIGKILL");
    await rec.cgroup?.kill("SIGKILL");
  }

  async stop(id: string, opts: { graceMs?: number; reason?: string } = {}): Promise<void> {
    await this.#starting.get(id)?.catch(() => {});
    const rec = this.#running.get(id);
    if (!rec) return;
    rec.stopReason ??= opts.reason ?? "stopped";
    const grace = opts.graceMs ?? this.#opts.stopGraceMs ?? 5000;
    const exited = rec.instance.exited;
    const within = (ms: number) =>
      Promise.race([
        exited.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), ms)),
      ]);
    if (grace > 0 && rec.launched.connection.open) {
      rec.launched.connection.send({ t: "shutdown" });
      if (await within(grace)) return;
      // Ask everything inside (not bwrap itself: it would take the sandbox down at once).
      if (rec.initPid && this.#initAlive(rec)) {
        const inside = descendants(await processTable(), rec.initPid).filter(
          (e) => e.pid !== rec.initPid,
        );
        signalPids(
          inside.map((e) => e.pid),
          "SIGTERM",
        );
        if (await within(Math.min(2000, grace))) return;
      }
    }
    await this.#kill(rec);
    await exited;
  }

  async exec(
    id: string,
    command: ExecCommand,
    opts: { timeoutMs?: number; onData?: (chunk: string) => void } = {},
  ): Promise<ExecResult> {
    const rec = this.#running.get(id);
    // (An init that has exited leaves a pid that may name another process's namespaces.)
    if (!rec?.initPid || !this.#initAlive(rec))
      throw new LobuError("sandbox_not_running", `sandbox ${id} is not running`, {
        status: 404,
        hint: "Start it (send it a message) and try again.",
      });
    const setup = await this.#prepare();
    if (!setup.nsenter || !setup.setpriv)
      throw new LobuError(
        "sandbox_exec_unavailable",
        "nsenter and setpriv (util-linux) are needed for exec",
        {
          status: 500,
          hint: "Install util-linux.",
        },
      );
    // bwrap's init (pid 1) and the worker share the sandbox's innermost user
    // namespace; its other namespaces belong to the user namespace above it
    // (--disable-userns nests one). Root may enter them all from outside. A
    // non-root gateway must pass through that parent user namespace, which needs
    // nsenter --user-parent (util-linux ≥ 2.39), then enter the inner one.
    const nested = setup.disableUserns && !setup.root;
    if (nested && !setup.nsenterUserParent)
      throw new LobuError(
        "sandbox_exec_unavailable",
        "exec into a sandbox of a non-root gateway needs nsenter --user-parent (util-linux 2.39 or later)",
        { status: 501, hint: "Upgrade util-linux, or run the gateway as root." },
      );
    const env = Object.entries({
      PATH: `${dirname(this.launcher.nodePath)}:/usr/local/bin:/usr/bin:/bin`,
      HOME: SANDBOX_WORKSPACE,
      LANG: "C.UTF-8",
      LOBU_SANDBOX_ID: id,
    }).map(([k, v]) => `${k}=${v}`);
    const inside = [
      // Inside the sandbox's pid namespace the init is pid 1.
      ...(nested
        ? ["/usr/bin/nsenter", "--target=1", "--user", "--preserve-credentials", "--"]
        : []),
      setup.setpriv,
      "--no-new-privs",
      "--pdeathsig=KILL",
      "--",
      ...this.#rlimits(setup, rec.spec),
      "/usr/bin/env",
      "-i",
      ...env,
      "/bin/sh",
      "-c",
      // A program and its arguments are exec'd as they are; a command line is the shell's.
      typeof command === "string"
        ? `cd ${SANDBOX_WORKSPACE} || exit 1; eval "$1"`
        : `cd ${SANDBOX_WORKSPACE} || exit 1; exec "$@"`,
      "lobu-exec",
      ...(typeof command === "string" ? [command] : command),
    ];
    const argv = [
      ...(setup.root ? [setup.setpriv, "--clear-groups", "--"] : []),
      setup.nsenter,
      `--target=${rec.initPid}`,
      nested ? "--user-parent" : "--user",
      "--mount",
      "--pid",
      "--net",
      "--ipc",
      "--uts",
      "--cgroup",
      // Root becomes the sandbox uid while entering; a non-root gateway already is it.
      ...(setup.root
        ? [`--setuid=${rec.meta.uid}`, `--setgid=${rec.meta.gid}`]
        : ["--preserve-credentials"]),
      "--",
      ...inside,
    ];
    const child = spawn(setup.shell, wrapperArgv(2, rec.cgroup?.procsFiles ?? [], argv), {
      stdio: ["ignore", "pipe", "pipe"],
      env: HELPER_ENV,
      cwd: "/",
    });
    let output = "";
    const limit = 1024 * 1024;
    const onChunk = (chunk: Buffer) => {
      const text = chunk.toString();
      opts.onData?.(text);
      if (output.length < limit) output += text.slice(0, limit - output.length);
    };
    child.stdout.on("data", onChunk);
    child.stderr.on("data", onChunk);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 60_000);
    const exitCode = await new Promise<number | null>((resolve) => {
      child.on("error", (err) => {
        output += err.message;
        resolve(null);
      });
      // Like a shell: a command ended by signal N exits with 128+N.
      const finished = (code: number | null, signal: NodeJS.Signals | null) =>
        resolve(code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : null));
      // Background processes the command left behind may hold its output open:
      // wait for the exit, give the streams a moment, then stop reading.
      child.on("exit", (code, signal) =>
        setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
          finished(code, signal);
        }, 100),
      );
      child.on("close", (code, signal) => finished(code, signal));
    });
    clearTimeout(timer);
    return { exitCode: timedOut ? null : exitCode, output, ...(timedOut ? { timedOut } : {}) };
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
   * @internal for probe(): start and stop a throwaway sandbox whose worker is a
   * node one-liner. Resolves with what went wrong, or undefined when all worked.
   */
  trial(): Promise<string | undefined> {
    const next = this.#trialLock.then(() => this.#trial());
    this.#trialLock = next.catch(() => {});
    return next;
  }
  #trialLock: Promise<unknown> = Promise.resolve();

  async #trial(): Promise<string | undefined> {
    const setup = await this.#prepare();
    // A fresh directory (and cgroup) per trial: back-to-back probes (auto selection,
    // `lobu doctor` next to a gateway) must not wait on each other's volume.
    const nonce = randomBytes(4).toString("hex");
    const dir = join(this.#opts.stateDir, `probe-${nonce}`);
    const volumeDir = join(dir, "volume");
    const socketPath = join(dir, "egress.sock");
    await mkdir(volumeDir, { recursive: true, mode: 0o700 });
    await rm(socketPath, { force: true });
    const server = createServer((c) => c.end("ok"));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, resolve);
    });
    const egress: EgressBinder = {
      bind: async () => ({ socketPath, close: async () => {} }),
    };
    const spec: SandboxSpec = {
      // Per state dir: two gateways on one host must not share the trial's cgroup.
      id: `lobu-probe-${digest(this.#opts.stateDir, 8)}-${nonce}`,
      key: { agentId: "probe", platform: "probe", userId: "probe", channelId: "probe" },
      volumeDir,
      limits: { memoryMb: 256, cpus: 1, pids: 64, diskMb: 16 },
      env: {},
    };
    try {
      const argv = [...this.#rlimits(setup, spec), this.launcher.nodePath, "-e", TRIAL_WORKER];
      const sandbox = await this.#start(spec, egress, argv, false);
      await this.stop(spec.id, { graceMs: 2000 });
      const info = await sandbox.exited;
      return info.code === 0 ? undefined : `trial worker ended with ${JSON.stringify(info)}`;
    } catch (err) {
      return errorMessage(err);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#starting.values()].map((p) => p.catch(() => {})));
    await Promise.all(
      this.running().map((id) => this.stop(id, { graceMs: 2000, reason: "stopped" })),
    );
  }
}

/** The trial worker: refuses to start with any network interface but loopback. */
const TRIAL_WORKER = `
const ifs = Object.keys(require("node:os").networkInterfaces());
if (ifs.some((n) => n !== "lo")) { console.error("network interfaces visible: " + ifs); process.exit(3); }
const ch = new (require("node:net").Socket)({ fd: 3 });
ch.write(JSON.stringify({ t: "ready", protocol: 1, pid: process.pid, mode: "single" }) + "\\n");
ch.on("data", () => process.exit(0));
ch.on("end", () => process.exit(0));
`;

async function makeStageDir(wanted: string | undefined): Promise<string> {
  const dir =
    wanted ?? (existsSync("/run") ? "/run/lobu-sandbox" : await mkdtemp("/tmp/lobu-stage-"));
  await mkdir(dir, { recursive: true, mode: 0o711 });
  await chmod(dir, 0o711);
  return dir;
}

function readInfo(stream: Readable | null, done: (pid: number | undefined) => void): void {
  if (!stream) {
    done(undefined);
    return;
  }
  let text = "";
  let settled = false;
  const settle = (pid: number | undefined) => {
    if (!settled) {
      settled = true;
      done(pid);
    }
  };
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    text += chunk;
    try {
      const info = JSON.parse(text) as { "child-pid"?: number };
      settle(info["child-pid"]);
    } catch {
      // incomplete
    }
  });
  stream.on("end", () => settle(undefined));
  stream.on("error", () => settle(undefined));
  stream.on("close", () => settle(undefined));
}

export function createProcessDriver(opts: ProcessDriverOptions): ProcessDriver {
  return new ProcessDriver(opts);
}
