import { createHash } from "node:crypto";
import { type BigIntStats, mkdirSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  errorMessage,
  type GatewayToWorker,
  LobuError,
  type Logger,
  type WorkerToGateway,
} from "@lobu/core";
import { bestEffort, settled } from "@lobu/core/best-effort";
import { isRoot } from "./commands.ts";
import type {
  DriverProbe,
  EgressBinder,
  ExitInfo,
  SandboxDriver,
  SandboxInstance,
  SandboxLimits,
  SandboxSpec,
  SandboxUsage,
  WorkerConnection,
} from "./driver.ts";
import { checkSandboxId } from "./env.ts";
import { readVolumeMeta, type VolumeMeta } from "./identity.ts";
import { launcherFrom, type WorkerLaunchConfig, type WorkerLauncher } from "./launcher.ts";
import { startPlainWorker } from "./plain-worker.ts";
import {
  blameFromJournal,
  clearPoolJournals,
  poolInstance,
  poolJournalPath,
  poolJournalScope,
} from "./pool-journal.ts";
import type { PackageMounts } from "./process/packages.ts";
import { type ToolCommand, ToolSandboxes } from "./process/tool-sandbox.ts";
import { ProcessDriver, type ProcessDriverOptions } from "./process-driver.ts";
import { adoptVolumeFiles, volumeUsage } from "./volume.ts";

/**
 * The `virtual` driver: a few pool processes, each hosting many sandboxes whose
 * agents run in the just-bash virtual shell (packages/worker/src/virtual). An
 * agent never runs a host process; its files are its volume, its network is
 * the pool's egress socket with its sandbox named by the pool's code.
 *
 * Pool processes are themselves sandboxed with bubblewrap when the host allows
 * it (through a ProcessDriver: own uid, no network, cgroup limits, only the
 * volumes root writable), or run as plain child processes when it does not.
 * Sandboxes are placed on pools by rendezvous hashing of their id, so a
 * sandbox always lands on the same pool while `poolSize` stays the same.
 */

export type PoolIsolation = "auto" | "bwrap" | "none";

export interface VirtualDriverOptions {
  /** Driver-private directory (the process driver's state when pools use bwrap). */
  stateDir: string;
  /** Parent of every volume: a sandbox's volume must be `<volumesRoot>/<id>`. */
  volumesRoot: string;
  /** Pool processes (default 2). */
  poolSize?: number;
  /** Sandbox the pool processes with bwrap: `auto` (default) when usable, `bwrap` or fail, `none`. */
  isolation?: PoolIsolation;
  launcher?: WorkerLauncher | WorkerLaunchConfig;
  logger?: Logger;
  /** Options for the process driver that sandboxes the pools (cgroup, extra binds, uid base). */
  process?: Partial<Omit<ProcessDriverOptions, "stateDir" | "launcher" | "logger">>;
  /** Limits of one pool process (default: twice a sandbox's memory, at least 2 GB; all CPUs). */
  poolLimits?: Partial<SandboxLimits>;
  /** Stop a pool process this long after its last sandbox left (default 5 min; 0 = keep). */
  poolIdleMs?: number;
  /** How long stop() waits for the pool to confirm it unloaded a sandbox (default 5 s). */
  closeTimeoutMs?: number;
  /** Extra environment for pool processes (e.g. LOBU_SHELL_THREADS, LOBU_SESSION_IDLE_MS). */
  poolEnv?: Record<string, string>;
  /**
   * Parent of every sandbox's skills folder (`<skillsRoot>/<id>`), shown
   * read-only to the pools; each sandbox sees its own at /skills.
   */
  skillsRoot?: string;
  /**
   * The pooled process tier (`process_mode = "pooled"`): bash commands run in a
   * bubblewrap sandbox of the conversation's own, started by the gateway per
   * command (process/tool-sandbox.ts), instead of the virtual shell. Needs
   * bwrap for the pools too.
   */
  commandSandboxes?: { packages?: PackageMounts };
}

/** A running pool process, whichever way it was started. */
interface PoolProcess {
  connection: WorkerConnection & { readonly open?: boolean };
  exited: Promise<ExitInfo>;
  usage(): Promise<SandboxUsage>;
  stop(graceMs: number): Promise<void>;
}

interface Member {
  id: string;
  pool: Pool;
  instance: SandboxInstance;
  listeners: Set<(msg: WorkerToGateway) => void>;
  resolveExit(info: ExitInfo): void;
  /** Turn in flight (a pool that dies then is blamed on this sandbox). */
  turn?: string;
  closing?: string;
  ended: boolean;
  diskCache: Cache<number | undefined>;
  /** What it was started with (its command sandboxes are made from them). */
  spec: SandboxSpec;
  egress: EgressBinder;
}

interface Cache<T> {
  at?: number;
  value?: Promise<T>;
}

async function cached<T>(cache: Cache<T>, ttlMs: number, load: () => Promise<T>): Promise<T> {
  if (!cache.value || Date.now() - (cache.at ?? 0) > ttlMs) {
    cache.at = Date.now();
    cache.value = load();
  }
  return cache.value;
}

interface Pool {
  index: number;
  id: string;
  proc?: PoolProcess;
  /** Names the running process's call journal (see pool-journal.ts). */
  instance?: string;
  starting?: Promise<PoolProcess>;
  stopping?: Promise<void>;
  members: Map<string, Member>;
  idleTimer?: NodeJS.Timeout;
  usageCache: Cache<SandboxUsage>;
}

/**
 * Share of a pool's memory limit for its main thread's heap. The pool's shell threads get
 * another 40 % between them (LOBU_POOL_MEMORY_MB, see the worker's pool-guards.ts), so
 * that heaps, buffers and code together stay within the limit: a job that needs more
 * fails on its own thread instead of the kernel killing the whole pool.
 */
const POOL_HEAP_FRACTION = 0.45;

/** Rendezvous (highest random weight) hashing: stable placement, little movement on resize. */
export function placeSandbox(id: string, poolSize: number): number {
  let best = 0;
  let bestScore = -1;
  for (let i = 0; i < poolSize; i++) {
    const score = createHash("sha256").update(`${id}\0${i}`).digest().readUIntBE(0, 6);
    if (score > bestScore) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}

/** The pool a virtual sandbox lives on (`pool-<n>`): the egress proxy checks it. */
export function poolIdFor(sandboxId: string, poolSize: number): string {
  return `pool-${placeSandbox(sandboxId, poolSize)}`;
}

/** The folder's stat, or undefined when it cannot be read (it is adopted again then). */
function folderIdentity(dir: string): BigIntStats | undefined {
  try {
    return statSync(dir, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

export class VirtualDriver implements SandboxDriver {
  readonly name = "virtual" as const;
  readonly launcher: WorkerLauncher;
  readonly #opts: VirtualDriverOptions;
  readonly #logger: Logger;
  readonly #pools: Pool[];
  readonly #members = new Map<string, Member>();
  readonly #volumesRoot: string;
  readonly #process: ProcessDriver;
  #mode?: Promise<{ mode: "bwrap" | "none"; detail: string }>;
  #journalsCleared?: Promise<void>;
  #journalScope?: string;
  /**
   * Volumes whose files were given to the pools' uid, by volume folder: which folder
   * (device, inode, birth time) and which uid. A restore or a new volume is a new
   * folder, so it is adopted again; the gateway's own writes into a volume give
   * their files to the uid as they write them (volume-files.ts).
   */
  readonly #adopted = new Map<string, string>();
  /**
   * The pools' uid record (`<volumes root>.sandbox.json`), read once per pool
   * process: it is written only when a pool process starts (its uid is allocated
   * then), so a wake need not read the file again (an async read costs 0.2 ms, and
   * several ms when the thread pool is busy with other files).
   */
  readonly #poolMeta = new WeakMap<PoolProcess, Promise<VolumeMeta | undefined>>();
  #closed = false;
  /** The pooled process tier's command sandboxes (commandSandboxes). */
  readonly #tools?: ToolSandboxes;

  constructor(opts: VirtualDriverOptions) {
    this.#opts = opts;
    this.launcher = launcherFrom(opts.launcher, opts.logger);
    this.#logger = opts.logger ?? this.launcher.logger;
    this.#volumesRoot = resolve(opts.volumesRoot);
    const size = Math.max(1, Math.floor(opts.poolSize ?? 2));
    this.#pools = Array.from({ length: size }, (_, index) => ({
      index,
      id: `pool-${index}`,
      members: new Map(),
      usageCache: {},
    }));
    this.#process = new ProcessDriver({
      quota: "watch",
      heapFraction: POOL_HEAP_FRACTION,
      ...opts.process,
      stateDir: opts.stateDir,
      launcher: this.launcher,
      logger: this.#logger,
    });
    if (opts.commandSandboxes) {
      const stateKey = createHash("sha256").update(opts.stateDir).digest("hex").slice(0, 8);
      this.#tools = new ToolSandboxes({
        setup: async () => {
          const { setup, error } = await this.#process.detectForProbe();
          if (!setup) throw new Error(`cannot sandbox commands: ${error}`);
          return setup;
        },
        launcher: this.launcher,
        opts: {
          ...this.#process.options,
          ...(opts.commandSandboxes.packages ? { packages: opts.commandSandboxes.packages } : {}),
        },
        volumesRoot: this.#volumesRoot,
        cgroupName: (id) => `${stateKey}-cmd-${id}`,
        log: this.#logger,
      });
    }
  }

  /** Number of pool processes this driver may run. */
  get poolSize(): number {
    return this.#pools.length;
  }

  /** Sandboxes loaded now, per pool (for operators and tests). */
  pools(): Array<{ id: string; running: boolean; pid?: number; sandboxes: string[] }> {
    return this.#pools.map((p) => ({
      id: p.id,
      running: p.proc !== undefined,
      pid: p.proc?.connection.pid,
      sandboxes: [...p.members.keys()],
    }));
  }

  running(): string[] {
    return [...this.#members.keys()];
  }

  /** How pool processes are isolated here (decided once: bwrap when it works, unless told otherwise). */
  isolation(): Promise<{ mode: "bwrap" | "none"; detail: string }> {
    this.#mode ??= this.#decide();
    return this.#mode;
  }

  async #decide(): Promise<{ mode: "bwrap" | "none"; detail: string }> {
    // Command sandboxes need bwrap, and pools that hand work to them must be sandboxed too.
    const wanted = this.#tools ? "bwrap" : (this.#opts.isolation ?? "auto");
    if (wanted === "none")
      return { mode: "none", detail: "pool processes are not sandboxed (isolation = none)" };
    const { setup, error } = await this.#process.detectForProbe();
    if (setup) {
      return {
        mode: "bwrap",
        detail: `pool processes are sandboxed with bubblewrap (${setup.root ? "own host uid" : "user namespace"}, no network, cgroup ${setup.cgroups ? `v${setup.cgroups.version}` : "none"}, seccomp ${setup.seccomp ? "on" : "off"})`,
      };
    }
    if (wanted === "bwrap")
      throw new LobuError("sandbox_unavailable", `cannot sandbox pool processes: ${error}`, {
        status: 500,
        hint: "Install bubblewrap (see `lobu doctor`), or let the virtual driver run pools as plain processes.",
      });
    return {
      mode: "none",
      detail: `pool processes are NOT sandboxed by the kernel (${error}); agents are still confined by the virtual shell`,
    };
  }

  async probe(): Promise<DriverProbe> {
    const details = [
      this.#tools
        ? "pooled process tier: agent loops share pool processes; each conversation's bash commands run in a bubblewrap sandbox of its own over its volume, network only through its egress identity"
        : "agents run in a virtual shell (just-bash): no host processes, files only in their own volume, network only through the egress proxy",
      `${this.#pools.length} pool process(es), sandboxes placed by id`,
    ];
    try {
      const { mode, detail } = await this.isolation();
      details.push(detail);
      if (mode === "bwrap") {
        const failure = await this.#process.trial();
        if (failure) {
          if (this.#tools || (this.#opts.isolation ?? "auto") === "bwrap") {
            details.push(`trial pool sandbox failed: ${failure.slice(0, 800)}`);
            return { driver: "virtual", isolated: true, ok: false, details };
          }
          this.#mode = Promise.resolve({
            mode: "none",
            detail: `pool processes are NOT sandboxed by the kernel (trial sandbox failed: ${failure.slice(0, 300)})`,
          });
          details.push((await this.#mode).detail);
        }
      }
      return { driver: "virtual", isolated: true, ok: true, details };
    } catch (err) {
      details.push(errorMessage(err));
      return { driver: "virtual", isolated: true, ok: false, details };
    }
  }

  async start(spec: SandboxSpec, egress: EgressBinder): Promise<SandboxInstance> {
    checkSandboxId(spec.id);
    if (this.#closed) throw new LobuError("sandbox_closed", "the virtual driver is shutting down");
    if (resolve(spec.volumeDir) !== join(this.#volumesRoot, spec.id))
      throw new LobuError(
        "sandbox_volume_invalid",
        `virtual sandbox ${spec.id} must keep its volume at ${join(this.#volumesRoot, spec.id)}, not ${spec.volumeDir}`,
        { status: 500, hint: "Pool processes only see the volumes root." },
      );
    if (this.#members.has(spec.id))
      throw new LobuError("sandbox_running", `sandbox ${spec.id} is already running`, {
        status: 409,
        hint: "Stop it first.",
      });
    const pool = this.#pools[placeSandbox(spec.id, this.#pools.length)]!;
    clearTimeout(pool.idleTimer);
    const proc = await this.#ensurePool(pool, spec, egress);
    await this.#adopt(spec.volumeDir, proc);
    if (this.#members.has(spec.id))
      throw new LobuError("sandbox_running", `sandbox ${spec.id} is already running`, {
        status: 409,
      });
    if (pool.proc !== proc)
      throw new LobuError(
        "sandbox_start_failed",
        `pool ${pool.id} stopped while ${spec.id} joined it`,
        {
          status: 503,
          hint: "Try again; the pool is restarted on demand.",
        },
      );
    return this.#join(pool, proc, spec, egress);
  }

  /** Root gateways run pools as their own uid: the sandbox's files must belong to it. */
  async #adopt(volumeDir: string, proc: PoolProcess): Promise<void> {
    if (!isRoot() || (await this.isolation()).mode !== "bwrap") return;
    const meta = await this.#metaFor(proc);
    if (!meta) return;
    // Once per volume, not per wake: the walk and the `find` process cost several ms.
    // One stat of a local folder: sync, since a round trip through libuv's threads
    // cost a wake 0.5 ms.
    const folder = folderIdentity(volumeDir);
    const record = folder
      ? `${folder.dev}:${folder.ino}:${folder.birthtimeNs}:${meta.uid}:${meta.gid}`
      : undefined;
    if (record && this.#adopted.get(volumeDir) === record) return;
    await adoptVolumeFiles(volumeDir, meta.uid, meta.gid);
    if (record) this.#adopted.set(volumeDir, record);
  }

  #metaFor(proc: PoolProcess): Promise<VolumeMeta | undefined> {
    let meta = this.#poolMeta.get(proc);
    if (!meta) {
      meta = readVolumeMeta(this.#volumesRoot);
      this.#poolMeta.set(proc, meta);
      // A failed read is not kept: the next wake reads again.
      meta.catch(() => this.#poolMeta.delete(proc));
    }
    return meta;
  }

  #join(pool: Pool, proc: PoolProcess, spec: SandboxSpec, egress: EgressBinder): SandboxInstance {
    const listeners = new Set<(msg: WorkerToGateway) => void>();
    let resolveExit: (info: ExitInfo) => void = () => {};
    const exited = new Promise<ExitInfo>((r) => {
      resolveExit = r;
    });
    const id = spec.id;
    const member: Member = {
      id,
      pool,
      listeners,
      resolveExit,
      ended: false,
      diskCache: {},
      spec,
      egress,
      instance: undefined as unknown as SandboxInstance,
    };
    const connection: WorkerConnection = {
      get pid() {
        return proc.connection.pid;
      },
      send: (msg) => {
        if (member.ended) return; // (a late cancel after the pool let it go)
        // A sandbox speaks for itself only, and never for the whole pool.
        if (!("sandboxId" in msg) || msg.sandboxId !== id) {
          this.#logger.warn(
            { sandboxId: id, t: msg.t },
            "dropped a message not addressed to this virtual sandbox",
          );
          return;
        }
        if (msg.t === "turn") member.turn = msg.turnId;
        proc.connection.send(msg);
      },
      onMessage: (listener) => {
        listeners.add(listener);
        return () => {
          listeners.delete(listener);
        };
      },
    };
    member.instance = {
      id,
      driver: "virtual",
      startedAt: Date.now(),
      connection,
      exited,
      usage: async () => {
        // Listing thousands of sandboxes must not run thousands of measurements.
        const shared = await cached(pool.usageCache, 2000, () =>
          proc.usage().catch(() => ({}) as SandboxUsage),
        );
        const diskBytes = await cached(member.diskCache, 15_000, () =>
          volumeUsage(spec.volumeDir, "watch"),
        );
        return {
          memoryBytes: shared.memoryBytes,
          pids: shared.pids,
          diskBytes,
          pool: { id: pool.id, sandboxes: pool.members.size },
        };
      },
    };
    pool.members.set(id, member);
    this.#members.set(id, member);
    return member.instance;
  }

  #end(member: Member, info: ExitInfo): void {
    if (member.ended) return;
    member.ended = true;
    member.listeners.clear();
    const { pool } = member;
    if (pool.members.get(member.id) === member) pool.members.delete(member.id);
    if (this.#members.get(member.id) === member) this.#members.delete(member.id);
    member.resolveExit(info);
    void this.#tools?.release(member.id);
    if (pool.members.size === 0) this.#armPoolIdle(pool);
  }

  #armPoolIdle(pool: Pool): void {
    clearTimeout(pool.idleTimer);
    const idleMs = this.#opts.poolIdleMs ?? 300_000;
    if (idleMs <= 0 || !pool.proc) return;
    pool.idleTimer = setTimeout(() => {
      if (pool.members.size === 0 && pool.proc && !pool.starting)
        void this.#stopPool(pool, 5000).catch((err) =>
          this.#logger.warn({ err: errorMessage(err), pool: pool.id }, "idle pool stop failed"),
        );
    }, idleMs);
    pool.idleTimer.unref();
  }

  async #ensurePool(pool: Pool, spec: SandboxSpec, egress: EgressBinder): Promise<PoolProcess> {
    await pool.stopping;
    if (pool.proc) return pool.proc;
    if (!pool.starting) {
      pool.starting = this.#startPool(pool, spec, egress).finally(() => {
        pool.starting = undefined;
      });
    }
    return pool.starting;
  }

  async #startPool(pool: Pool, spec: SandboxSpec, egress: EgressBinder): Promise<PoolProcess> {
    const { mode } = await this.isolation();
    // Journals this gateway's pools left behind when it was killed are of no use to anyone
    // (other gateways' on a shared volumes directory are left alone: their scope differs).
    this.#journalScope ??= poolJournalScope(this.#opts.stateDir);
    this.#journalsCleared ??= clearPoolJournals(this.#volumesRoot, this.#journalScope);
    await this.#journalsCleared;
    const limits: SandboxLimits = {
      memoryMb: Math.max(2048, spec.limits.memoryMb * 2),
      cpus: availableParallelism(),
      pids: Math.max(1024, spec.limits.pids * 2),
      diskMb: spec.limits.diskMb,
      ...this.#opts.poolLimits,
    };
    // (LOBU_SANDBOX_ID becomes the pool's id: workerEnv sets it from the spec.)
    const instance = poolInstance(this.#journalScope);
    const env = {
      ...spec.env,
      ...this.#opts.poolEnv,
      LOBU_DISK_MB: String(spec.limits.diskMb),
      // The pool's call journal and the share of memory its shell threads may use.
      LOBU_POOL_INSTANCE: instance,
      LOBU_POOL_MEMORY_MB: String(limits.memoryMb),
      ...(this.#tools ? { LOBU_POOL_COMMANDS: "sandbox" } : {}),
    };
    const skillsRoot = this.#opts.skillsRoot;
    if (skillsRoot) mkdirSync(skillsRoot, { recursive: true });
    const poolSpec: SandboxSpec = {
      id: pool.id,
      key: { agentId: "pool", platform: "pool", userId: pool.id, channelId: pool.id },
      volumeDir: this.#volumesRoot,
      limits,
      env,
      ...(skillsRoot ? { skillsDir: skillsRoot } : {}),
    };
    const proc =
      mode === "bwrap"
        ? await this.#startSandboxedPool(poolSpec, egress)
        : await this.#startPlainPool(poolSpec, egress);
    pool.proc = proc;
    pool.instance = instance;
    pool.usageCache = {};
    proc.connection.onMessage((msg) => this.#route(pool, msg));
    void proc.exited.then((info) => this.#poolExited(pool, proc, instance, info));
    this.#logger.info(
      { pool: pool.id, pid: proc.connection.pid, isolation: mode },
      "virtual sandbox pool started",
    );
    return proc;
  }

  async #startSandboxedPool(spec: SandboxSpec, egress: EgressBinder): Promise<PoolProcess> {
    const instance = await this.#process.startPool(spec, egress);
    return {
      connection: instance.connection,
      exited: instance.exited,
      usage: () => instance.usage(),
      stop: (graceMs) => this.#process.stop(spec.id, { graceMs }),
    };
  }

  async #startPlainPool(spec: SandboxSpec, egress: EgressBinder): Promise<PoolProcess> {
    const worker = await startPlainWorker({
      launcher: this.launcher,
      spec,
      egress,
      identity: { kind: "pool", poolId: spec.id },
      cwd: this.#volumesRoot,
      home: tmpdir(),
      env: {
        LOBU_WORKER_MODE: "pool",
        LOBU_VOLUMES_ROOT: this.#volumesRoot,
        ...(spec.skillsDir ? { LOBU_SKILLS_ROOT: spec.skillsDir } : {}),
      },
      nodeArgs: [
        `--max-old-space-size=${Math.max(64, Math.floor(spec.limits.memoryMb * POOL_HEAP_FRACTION))}`,
      ],
      log: this.#logger.child({ pool: spec.id }),
    });
    return {
      connection: worker.launched.connection,
      exited: worker.exited,
      usage: () => worker.usage(),
      stop: (graceMs) => worker.stop(graceMs),
    };
  }

  #route(pool: Pool, msg: WorkerToGateway): void {
    if (msg.t === "log") {
      this.#logger[msg.level](
        { pool: pool.id, sandboxId: msg.sandboxId, from: "worker" },
        msg.msg.slice(0, 2000),
      );
      return;
    }
    if (!("sandboxId" in msg)) return;
    const member = pool.members.get(msg.sandboxId);
    if (!member) return;
    if (msg.t === "tool_exec" || msg.t === "tool_exec_cancel") {
      this.#toolExec(pool, member, msg);
      return;
    }
    if (msg.t === "turn_end" && msg.turnId === member.turn) member.turn = undefined;
    for (const listener of [...member.listeners]) {
      try {
        listener(msg);
      } catch (err) {
        this.#logger.error(
          { sandboxId: member.id, err: errorMessage(err) },
          "sandbox message listener threw",
        );
      }
    }
    if (msg.t === "closed")
      this.#end(member, { code: 0, signal: null, reason: member.closing ?? "evicted" });
  }

  /**
   * A pool asks to run a bash command for one of its members: only in the pooled
   * process tier, only while that member has a turn running, and always in the
   * member's own command sandbox (the pool names the member; membership was checked).
   */
  #toolExec(
    pool: Pool,
    member: Member,
    msg: Extract<WorkerToGateway, { t: "tool_exec" | "tool_exec_cancel" }>,
  ): void {
    const tools = this.#tools;
    if (msg.t === "tool_exec_cancel") {
      tools?.cancel(member.id, msg.callId);
      return;
    }
    const proc = pool.proc;
    const reply = (
      result: Omit<
        Extract<GatewayToWorker, { t: "tool_exec_result" }>,
        "t" | "sandboxId" | "callId"
      >,
    ) => {
      if (member.ended || pool.proc !== proc) return;
      proc?.connection.send({
        t: "tool_exec_result",
        sandboxId: member.id,
        callId: msg.callId,
        ...result,
      });
    };
    const refuse = (error: string) => reply({ exitCode: null, stdout: "", stderr: "", error });
    if (!tools) {
      refuse("this gateway runs no commands for virtual sandboxes");
      return;
    }
    if (!member.turn) {
      refuse("no turn of this sandbox is running");
      return;
    }
    const cmd: ToolCommand = {
      callId: msg.callId,
      command: msg.command,
      cwd: msg.cwd,
      env: msg.env,
      timeoutMs: Math.min(msg.timeoutMs, 3_600_000),
    };
    void tools.run(member.spec, member.egress, cmd).then(reply);
  }

  async #poolExited(
    pool: Pool,
    proc: PoolProcess,
    instance: string,
    info: ExitInfo,
  ): Promise<void> {
    if (pool.proc === proc) {
      pool.proc = undefined;
      pool.instance = undefined;
    }
    clearTimeout(pool.idleTimer);
    // Its members now, before the journal is read: new ones may join a restarted pool.
    const members = [...pool.members.values()];
    const abnormal = info.reason === "crashed" || info.reason === "oom";
    // A pool that dies is charged to the sandboxes whose calls were running on its main
    // thread when it died, as its call journal says; the others were only evicted (their
    // turns are retried and nothing counts against them). No journal: no one is charged.
    const journal = poolJournalPath(this.#volumesRoot, pool.id, instance);
    const blamed = abnormal
      ? await blameFromJournal(journal, instance).catch((err: unknown) => {
          this.#logger.warn(
            { pool: pool.id, err: errorMessage(err) },
            "pool call journal unreadable",
          );
          return { sandboxes: new Set<string>(), stalled: false };
        })
      : { sandboxes: new Set<string>(), stalled: false };
    await rm(journal, { force: true }).catch(
      bestEffort(this.#logger, "pool call journal left behind (cleared at the next start)", {
        pool: pool.id,
        journal,
      }),
    );
    if (abnormal)
      this.#logger.warn(
        {
          pool: pool.id,
          ...info,
          sandboxes: pool.members.size,
          blamed: [...blamed.sandboxes],
          stalled: blamed.stalled,
        },
        blamed.stalled ? "pool process froze and was ended" : "pool process died",
      );
    for (const member of members) {
      const reason =
        member.closing ?? (!abnormal || blamed.sandboxes.has(member.id) ? info.reason : "evicted");
      this.#end(member, { code: info.code, signal: info.signal, reason });
    }
  }

  async #stopPool(pool: Pool, graceMs: number): Promise<void> {
    const proc = pool.proc;
    if (!proc) return;
    if (!pool.stopping) {
      pool.stopping = (async () => {
        await proc.stop(graceMs);
        await proc.exited;
      })().finally(() => {
        pool.stopping = undefined;
      });
    }
    await pool.stopping;
  }

  async stop(id: string, opts: { graceMs?: number; reason?: string } = {}): Promise<void> {
    const member = this.#members.get(id);
    if (!member) return;
    member.closing ??= opts.reason ?? "stopped";
    const proc = member.pool.proc;
    if (proc && proc.connection.open !== false) {
      proc.connection.send({ t: "close", sandboxId: id });
      const wait = opts.graceMs ?? this.#opts.closeTimeoutMs ?? 5000;
      await Promise.race([
        member.instance.exited,
        new Promise((r) => setTimeout(r, Math.max(wait, 100)).unref()),
      ]);
    }
    // The pool did not confirm in time (a stuck turn): it is gone for the gateway anyway.
    this.#end(member, { code: 0, signal: null, reason: member.closing });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.#pools.map(async (pool) => {
        clearTimeout(pool.idleTimer);
        await settled(pool.starting);
        for (const member of pool.members.values()) member.closing ??= "stopped";
        await this.#stopPool(pool, 2000).catch(
          bestEffort(this.#logger, "pool not stopped cleanly at close", { pool: pool.id }),
        );
      }),
    );
    await this.#tools?.close();
    await this.#process.close();
  }
}

export function createVirtualDriver(opts: VirtualDriverOptions): VirtualDriver {
  return new VirtualDriver(opts);
}
