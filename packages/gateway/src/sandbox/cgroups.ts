import { constants } from "node:fs";
import { access, mkdir, readdir, readFile, rmdir, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createLogger } from "@lobu/core";
import { bestEffort, type FailureLog, ignoreGone, isGone } from "@lobu/core/best-effort";
import type { SandboxLimits } from "./driver.ts";
import { type MountEntry, readMounts } from "./mountinfo.ts";
import { signalPids } from "./proc.ts";

/**
 * Resource limits for one sandbox through cgroups, v1 or v2 behind one interface.
 *
 * Placement: sandbox cgroups live under `<our own cgroup>/<name>/<sandbox id>` in each
 * hierarchy (v1: memory, pids, cpu; v2: the unified one). A process joins by writing
 * its own pid into `procsFiles` before it execs bwrap, so nothing in the sandbox ever
 * runs outside its limits.
 */

export type Controller = "memory" | "pids" | "cpu";
const CONTROLLERS: Controller[] = ["memory", "pids", "cpu"];
const CPU_PERIOD_US = 100_000;
const MiB = 1024 * 1024;
const HALF_MADE = "half-made sandbox cgroup left behind (removed when the sandbox next starts)";

export interface SandboxCgroup {
  /** Where it lives (first hierarchy), for logs. */
  readonly path: string;
  /** Files a process writes its pid into to join (one per v1 hierarchy, one for v2). */
  readonly procsFiles: string[];
  usage(): Promise<{ memoryBytes?: number; pids?: number }>;
  /** How many times the kernel OOM killer fired in this cgroup. */
  oomKills(): Promise<number>;
  pids(): Promise<number[]>;
  kill(signal: NodeJS.Signals): Promise<void>;
  /** Kill whatever is left and remove the cgroup (idempotent). */
  destroy(): Promise<void>;
}

export interface CgroupManager {
  readonly version: 1 | 2;
  readonly controllers: Controller[];
  create(name: string, limits: SandboxLimits): Promise<SandboxCgroup>;
  /** Whether the cgroup `name` exists and holds processes (a sandbox running now). */
  occupied(name: string): Promise<boolean>;
}

export interface CgroupOptions {
  /** Directory name under our own cgroup (default `lobu`). */
  name?: string;
  /** v2 only: an explicit, delegated cgroup directory to create sandboxes under. */
  parent?: string;
  /** Where cgroups left behind by a failed cleanup are reported. */
  log?: FailureLog;
}

export interface CgroupDetection {
  manager?: CgroupManager;
  /** What was found and, when something is missing, what to do about it. */
  details: string[];
}

/** `/proc/self/cgroup`: hierarchy controllers → our path in it (`""` is the v2 line). */
async function ownCgroups(): Promise<Array<{ controllers: string[]; path: string }>> {
  const text = await readFile("/proc/self/cgroup", "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [, controllers = "", ...rest] = line.split(":");
      return { controllers: controllers ? controllers.split(",") : [], path: rest.join(":") };
    });
}

function under(mount: MountEntry, path: string): string {
  // Inside a cgroup namespace the mount root may be a sub-path of what /proc/self/cgroup shows.
  const rel =
    mount.root !== "/" && (path === mount.root || path.startsWith(`${mount.root}/`))
      ? path.slice(mount.root.length)
      : path;
  return join(mount.mountPoint, rel);
}

async function readNumber(file: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(file, "utf8")).trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

async function readKey(file: string, key: string): Promise<number> {
  try {
    const text = await readFile(file, "utf8");
    const m = new RegExp(`^${key} (\\d+)$`, "m").exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function readPids(procsFile: string): Promise<number[]> {
  try {
    return (await readFile(procsFile, "utf8")).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGKILL everything in the cgroup until it is empty, then remove its directories. */
async function drainAndRemove(dirs: string[], kill?: () => Promise<void>): Promise<void> {
  for (let attempt = 0; attempt < 250; attempt++) {
    const pids = (await Promise.all(dirs.map((d) => readPids(join(d, "cgroup.procs"))))).flat();
    if (pids.length === 0) break;
    if (kill) await kill();
    signalPids(pids, "SIGKILL");
    await sleep(20);
  }
  for (const dir of dirs) {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await rmdir(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") break;
        if (code !== "EBUSY" || attempt === 49) throw err;
        await sleep(20);
      }
    }
  }
}

/**
 * Remove leftover sandbox cgroups that have no process (from a gateway that
 * crashed). Young ones are left alone: another driver may be about to join one.
 */
async function sweep(base: string, log: FailureLog): Promise<void> {
  let names: string[] = [];
  try {
    names = (await readdir(base, { withFileTypes: true }))
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(base, name);
    const age = await stat(dir).then(
      (st) => Date.now() - st.mtimeMs,
      () => 0,
    );
    if (age > 60_000 && (await readPids(join(dir, "cgroup.procs"))).length === 0)
      await rmdir(dir)
        .catch(ignoreGone)
        .catch(
          bestEffort(log, "leftover sandbox cgroup not removed (tried again at the next start)", {
            cgroup: dir,
          }),
        );
  }
}

class V1Cgroup implements SandboxCgroup {
  readonly path: string;
  readonly procsFiles: string[];
  readonly #dirs: Partial<Record<Controller, string>>;
  constructor(dirs: Partial<Record<Controller, string>>) {
    this.#dirs = dirs;
    const all = Object.values(dirs);
    this.path = all[0] ?? "";
    this.procsFiles = all.map((d) => join(d, "cgroup.procs"));
  }
  async usage(): Promise<{ memoryBytes?: number; pids?: number }> {
    const m = this.#dirs.memory;
    const p = this.#dirs.pids;
    return {
      memoryBytes: m ? await readNumber(join(m, "memory.usage_in_bytes")) : undefined,
      pids: p ? await readNumber(join(p, "pids.current")) : undefined,
    };
  }
  async oomKills(): Promise<number> {
    const m = this.#dirs.memory;
    return m ? readKey(join(m, "memory.oom_control"), "oom_kill") : 0;
  }
  async pids(): Promise<number[]> {
    const lists = await Promise.all(this.procsFiles.map(readPids));
    return [...new Set(lists.flat())];
  }
  async kill(signal: NodeJS.Signals): Promise<void> {
    signalPids(await this.pids(), signal);
  }
  async destroy(): Promise<void> {
    await drainAndRemove(Object.values(this.#dirs));
  }
}

class V1Manager implements CgroupManager {
  readonly version = 1 as const;
  readonly controllers: Controller[];
  readonly #bases: Partial<Record<Controller, string>>;
  readonly #log: FailureLog;
  constructor(bases: Partial<Record<Controller, string>>, log: FailureLog) {
    this.#bases = bases;
    this.#log = log;
    this.controllers = Object.keys(bases) as Controller[];
  }
  async occupied(name: string): Promise<boolean> {
    for (const c of this.controllers)
      if ((await readPids(join(this.#bases[c]!, name, "cgroup.procs"))).length > 0) return true;
    return false;
  }
  async create(name: string, limits: SandboxLimits): Promise<SandboxCgroup> {
    const dirs: Partial<Record<Controller, string>> = {};
    for (const c of this.controllers) dirs[c] = join(this.#bases[c]!, name);
    await drainAndRemove(Object.values(dirs).filter(Boolean));
    const cg = new V1Cgroup(dirs);
    try {
      for (const dir of Object.values(dirs)) await mkdir(dir);
      if (dirs.memory) {
        const bytes = String(limits.memoryMb * MiB);
        await writeFile(join(dirs.memory, "memory.limit_in_bytes"), bytes);
        // Swap counts against the same limit, so a sandbox cannot page its way past it.
        if (await exists(join(dirs.memory, "memory.memsw.limit_in_bytes")))
          await writeFile(join(dirs.memory, "memory.memsw.limit_in_bytes"), bytes);
      }
      if (dirs.pids) await writeFile(join(dirs.pids, "pids.max"), String(limits.pids));
      if (dirs.cpu) {
        await writeFile(join(dirs.cpu, "cpu.cfs_period_us"), String(CPU_PERIOD_US));
        await writeFile(join(dirs.cpu, "cpu.cfs_quota_us"), String(cpuQuota(limits.cpus)));
      }
    } catch (err) {
      await cg.destroy().catch(bestEffort(this.#log, HALF_MADE, { cgroup: cg.path }));
      throw err;
    }
    return cg;
  }
}

class V2Cgroup implements SandboxCgroup {
  readonly path: string;
  readonly procsFiles: string[];
  constructor(dir: string) {
    this.path = dir;
    this.procsFiles = [join(dir, "cgroup.procs")];
  }
  async usage(): Promise<{ memoryBytes?: number; pids?: number }> {
    return {
      memoryBytes: await readNumber(join(this.path, "memory.current")),
      pids: await readNumber(join(this.path, "pids.current")),
    };
  }
  oomKills(): Promise<number> {
    return readKey(join(this.path, "memory.events"), "oom_kill");
  }
  pids(): Promise<number[]> {
    return readPids(this.procsFiles[0]!);
  }
  async kill(signal: NodeJS.Signals): Promise<void> {
    if (signal === "SIGKILL" && (await exists(join(this.path, "cgroup.kill")))) {
      // Gone: nothing left to kill. Refused otherwise: signal each process instead.
      const killed = await writeFile(join(this.path, "cgroup.kill"), "1").then(
        () => true,
        (err: unknown) => isGone(err),
      );
      if (killed) return;
    }
    signalPids(await this.pids(), signal);
  }
  async destroy(): Promise<void> {
    await drainAndRemove([this.path], () => this.kill("SIGKILL"));
  }
}

class V2Manager implements CgroupManager {
  readonly version = 2 as const;
  readonly controllers: Controller[];
  readonly #base: string;
  readonly #log: FailureLog;
  constructor(base: string, controllers: Controller[], log: FailureLog) {
    this.#base = base;
    this.#log = log;
    this.controllers = controllers;
  }
  async occupied(name: string): Promise<boolean> {
    return (await readPids(join(this.#base, name, "cgroup.procs"))).length > 0;
  }
  async create(name: string, limits: SandboxLimits): Promise<SandboxCgroup> {
    const dir = join(this.#base, name);
    const cg = new V2Cgroup(dir);
    await cg.destroy();
    try {
      await mkdir(dir);
      if (this.controllers.includes("memory")) {
        await writeFile(join(dir, "memory.max"), String(limits.memoryMb * MiB));
        if (await exists(join(dir, "memory.swap.max")))
          await writeFile(join(dir, "memory.swap.max"), "0");
      }
      if (this.controllers.includes("pids"))
        await writeFile(join(dir, "pids.max"), String(limits.pids));
      if (this.controllers.includes("cpu"))
        await writeFile(join(dir, "cpu.max"), `${cpuQuota(limits.cpus)} ${CPU_PERIOD_US}`);
    } catch (err) {
      await cg.destroy().catch(bestEffort(this.#log, HALF_MADE, { cgroup: cg.path }));
      throw err;
    }
    return cg;
  }
}

function cpuQuota(cpus: number): number {
  return Math.max(1000, Math.round(cpus * CPU_PERIOD_US));
}

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message}` : String(err);
}

/**
 * Find a cgroup hierarchy we can create sandbox cgroups in. Never throws: when
 * nothing is usable, `manager` is undefined and `details` says why.
 */
export async function detectCgroups(opts: CgroupOptions = {}): Promise<CgroupDetection> {
  const name = opts.name ?? "lobu";
  const log = opts.log ?? createLogger("cgroups");
  const details: string[] = [];
  let all: MountEntry[];
  let own: Array<{ controllers: string[]; path: string }>;
  try {
    all = await readMounts();
    own = await ownCgroups();
  } catch (err) {
    return { details: [`cgroups: cannot read /proc (${errText(err)}); not Linux?`] };
  }

  // v2 when the unified hierarchy actually holds the memory controller (pure v2 hosts).
  const v2Mount = all.find((m) => m.fsType === "cgroup2");
  const v2Path = own.find((l) => l.controllers.length === 0)?.path;
  if (v2Mount && v2Path !== undefined) {
    let ownDir = opts.parent ?? under(v2Mount, v2Path);
    // Already moved into our leaf by an earlier detection: delegate from its parent.
    if (!opts.parent && basename(ownDir) === `${name}-gateway`) ownDir = dirname(ownDir);
    const available = await readFile(join(ownDir, "cgroup.controllers"), "utf8").then(
      (t) => t.trim().split(/\s+/),
      () => [] as string[],
    );
    if (available.includes("memory")) {
      try {
        const { base, controllers, moved } = await setupV2(ownDir, name, available);
        if (moved)
          details.push(
            `cgroup v2: moved the gateway's processes into ${moved} so controllers can be delegated (no internal processes rule)`,
          );
        details.push(`cgroup v2 at ${base} (controllers: ${controllers.join(", ")})`);
        const missing = CONTROLLERS.filter((c) => !controllers.includes(c));
        if (missing.length)
          details.push(
            `cgroup v2: ${missing.join(", ")} not available: those limits are not enforced`,
          );
        await sweep(base, log);
        return { manager: new V2Manager(base, controllers, log), details };
      } catch (err) {
        details.push(
          `cgroup v2 at ${ownDir} is not writable (${errText(err)}): run the gateway as root or in a delegated cgroup (systemd: Delegate=yes), or set the cgroup parent`,
        );
        return { details };
      }
    }
  }

  // v1 (or hybrid: v1 controllers with an empty unified hierarchy).
  const bases: Partial<Record<Controller, string>> = {};
  for (const controller of CONTROLLERS) {
    const mount = all.find((m) => m.fsType === "cgroup" && m.superOptions.includes(controller));
    const line = own.find((l) => l.controllers.includes(controller));
    if (!mount || !line) {
      details.push(`cgroup v1: no ${controller} hierarchy mounted`);
      continue;
    }
    const base = join(under(mount, line.path), name);
    try {
      await mkdir(base, { recursive: true });
      // It may exist already (made by root earlier): we must be able to create in it.
      await access(base, constants.W_OK);
      await sweep(base, log);
      bases[controller] = base;
    } catch (err) {
      details.push(
        `cgroup v1 ${controller}: cannot create ${base} (${errText(err)}); run the gateway as root for resource limits`,
      );
    }
  }
  const controllers = Object.keys(bases) as Controller[];
  if (controllers.length === 0) {
    details.push(
      "cgroups: none usable; memory, process and CPU limits fall back to rlimits and polling",
    );
    return { details };
  }
  details.push(
    `cgroup v1 (controllers: ${controllers.join(", ")}) under ${Object.values(bases)[0]}`,
  );
  return { manager: new V1Manager(bases, log), details };
}

async function setupV2(
  ownDir: string,
  name: string,
  available: string[],
): Promise<{ base: string; controllers: Controller[]; moved?: string }> {
  const enabledIn = async (dir: string) =>
    (await readFile(join(dir, "cgroup.subtree_control"), "utf8")).trim().split(/\s+/);
  let moved: string | undefined;
  const leaf = join(ownDir, `${name}-gateway`);
  const enable = async (dir: string, controller: Controller): Promise<boolean> => {
    if ((await enabledIn(dir)).includes(controller)) return true;
    try {
      await writeFile(join(dir, "cgroup.subtree_control"), `+${controller}`);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EBUSY" || dir !== ownDir || moved) return false;
      // "No internal processes": a non-root cgroup with processes cannot hand
      // controllers to children. Move its processes (the gateway and whatever
      // shares its cgroup) into a leaf first, as container inits do.
      moved = leaf;
      await mkdir(leaf, { recursive: true });
      for (const pid of await readPids(join(ownDir, "cgroup.procs")))
        await writeFile(join(leaf, "cgroup.procs"), String(pid)).catch(ignoreGone); // exited meanwhile
      return enable(dir, controller);
    }
  };
  const controllers: Controller[] = [];
  for (const c of CONTROLLERS)
    if (available.includes(c) && (await enable(ownDir, c))) controllers.push(c);
  if (!controllers.includes("memory"))
    throw new Error(`cannot enable the memory controller in ${ownDir}/cgroup.subtree_control`);
  const base = join(ownDir, name);
  await mkdir(base, { recursive: true });
  await access(base, constants.W_OK);
  for (const c of [...controllers]) {
    if (!(await enable(base, c))) controllers.splice(controllers.indexOf(c), 1);
  }
  return { base, controllers, moved };
}
