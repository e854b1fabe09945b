import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import {
  type BwrapLayout,
  bwrapArgs,
  etcFiles,
  isUnder,
  normalizeBinds,
  POOL_SKILLS,
  POOL_VOLUMES,
  pathsToHide,
  SANDBOX_CA_BUNDLE,
  SANDBOX_EGRESS_SOCKET,
  SANDBOX_SKILLS,
  SANDBOX_WORKSPACE,
  stageArgv,
  wrapperArgv,
} from "../bwrap.ts";
import { HELPER_ENV } from "../commands.ts";
import type { SandboxLimits, SandboxSpec } from "../driver.ts";
import { workerEnv } from "../env.ts";
import type { LaunchedWorker, WorkerLauncher } from "../launcher.ts";
import { startTicks } from "../proc.ts";
import type { Setup } from "./detect.ts";
import { MiB, type ProcessDriverOptions } from "./options.ts";
import { packageBinds, packageEnv } from "./packages.ts";
import type { SandboxResources } from "./resources.ts";

/** The driver options that shape a sandbox's layout. */
export type LaunchOptions = Pick<
  ProcessDriverOptions,
  | "stateDir"
  | "extraRoBinds"
  | "caBundle"
  | "hidePaths"
  | "tmpMb"
  | "heapFraction"
  | "maxOpenFiles"
  | "packages"
>;

export interface LaunchDeps {
  setup: Setup;
  launcher: WorkerLauncher;
  opts: LaunchOptions;
}

export interface LaunchRequest {
  spec: SandboxSpec;
  resources: SandboxResources;
  /** Runs inside instead of the worker (the probe's trial worker), rlimits included. */
  workerArgv?: string[];
  /** More host paths shown read-only in this sandbox only (the trial worker's file). */
  extraRoBinds?: string[];
}

/** A sandbox whose worker said ready. */
export interface LaunchedSandbox extends SandboxResources {
  spec: SandboxSpec;
  worker: LaunchedWorker;
  /** Host pid of the sandbox's pid 1 (bwrap's init), from --info-fd. */
  initPid?: number;
  /** Its start time: once the init has exited, its pid may belong to any other process. */
  initStart?: number;
}

/** Descriptors of the launched shell: bwrap's --info-fd, then its data fds (seccomp, /etc files). */
export const FDS = { info: 4, firstData: 5 };

/** Where bwrap reads each source from (see stagingFor). */
interface Staging {
  /** Root: the stage dir the sources are bind-mounted onto; otherwise none. */
  dir?: string;
  sources: Array<{ source: string; name: string }>;
  at(path: string, name: string): string;
}

/** Host paths shown read-only in every sandbox: the worker's runtime. */
export function runtimeBinds(launcher: WorkerLauncher, opts: LaunchOptions): string[] {
  return normalizeBinds([
    ...launcher.runtimeDirs,
    dirname(launcher.entry),
    dirname(launcher.nodePath),
    ...(opts.extraRoBinds ?? []),
  ]);
}

/**
 * prlimit argv for a sandbox's processes. Applied inside the sandbox, after its
 * user namespaces exist, so RLIMIT_NPROC counts this sandbox's processes only
 * (per user namespace), not the host uid's.
 */
export function rlimitArgs(setup: Setup, limits: SandboxLimits, maxOpenFiles = 4096): string[] {
  if (!setup.prlimit) return [];
  const fsize = limits.diskMb * MiB;
  return [
    setup.prlimit,
    `--nofile=${maxOpenFiles}:${maxOpenFiles}`,
    "--core=0:0",
    `--fsize=${fsize}:${fsize}`,
    `--nproc=${limits.pids}:${limits.pids}`,
    "--",
  ];
}

/**
 * Start the sandbox's worker under bwrap (as its uid, in its cgroup, with the
 * seccomp filter) and wait for it to say ready and for bwrap to name its init.
 */
export async function launchSandbox(
  deps: LaunchDeps,
  req: LaunchRequest,
): Promise<LaunchedSandbox> {
  const { setup, launcher } = deps;
  const { spec, resources } = req;
  const started = sandboxArgv(deps, req);
  let resolveInit: (pid: number | undefined) => void = () => {};
  const initPid = new Promise<number | undefined>((r) => {
    resolveInit = r;
  });
  const worker = await launcher.launch({
    sandboxId: spec.id,
    command: setup.shell,
    args: started.args,
    env: HELPER_ENV,
    cwd: "/",
    extraFds: ["pipe", ...started.data.map(() => "pipe" as const)],
    onSpawn: (child) => {
      started.data.forEach((content, i) => {
        const pipe = child.stdio[FDS.firstData + i] as NodeJS.WritableStream | null;
        // (Binary for the seccomp program, text for the /etc files.)
        pipe?.end(content);
      });
      readInfo(child.stdio[FDS.info] as Readable | null, resolveInit);
    },
  });
  const pid = await initPid;
  return { ...resources, spec, worker, initPid: pid, initStart: pid ? startTicks(pid) : undefined };
}

/**
 * The arguments for `setup.shell` that start `req` in its sandbox (as its uid,
 * in its cgroup, with the seccomp filter), and the data to write to its data
 * descriptors (FDS.firstData on). `req.workerArgv` runs instead of the worker.
 */
export function sandboxArgv(
  deps: LaunchDeps,
  req: LaunchRequest,
): { args: string[]; data: Array<string | Buffer> } {
  const { setup, launcher, opts } = deps;
  const { spec, resources } = req;
  const { roBinds, hide } = bindsFor(deps, req);
  const packages = opts.packages && !resources.pool ? packageBinds(opts.packages, spec.id) : [];
  const staging = stagingFor(setup, opts, resources, roBinds, packages, spec.skillsDir);
  const layout = bwrapArgs(layoutFor(deps, req, { roBinds, hide, staging, packages }));
  const inner = req.workerArgv ?? [
    ...rlimitArgs(setup, spec.limits, opts.maxOpenFiles),
    ...launcher.workerArgv(heapFlags(launcher, spec.limits, opts.heapFraction)),
  ];
  const command = commandFor(setup, resources, staging, [
    setup.bwrap,
    ...layout.args,
    "--",
    ...inner,
  ]);
  const keepFd = FDS.firstData + layout.data.length - 1;
  return {
    args: wrapperArgv(keepFd, resources.cgroup?.procsFiles ?? [], command),
    data: layout.data,
  };
}

/** The runtime shown read-only, and the paths under it to cover (state and data dirs). */
function bindsFor(deps: LaunchDeps, req: LaunchRequest): { roBinds: string[]; hide: string[] } {
  const { opts } = deps;
  const runtime = runtimeBinds(deps.launcher, opts);
  const roBinds = req.extraRoBinds?.length
    ? normalizeBinds([...runtime, ...req.extraRoBinds])
    : runtime;
  const hide = pathsToHide(
    [opts.stateDir, dirname(req.resources.volumeDir), ...(opts.hidePaths ?? [])],
    roBinds,
  );
  // An extra bind inside a hidden path (the CA bundle in a data dir under the
  // runtime) was folded into its parent: bind it again, above the hiding tmpfs.
  for (const extra of normalizeBinds(opts.extraRoBinds ?? []))
    if (hide.some((h) => isUnder(extra, h)) && !roBinds.includes(extra)) roBinds.push(extra);
  return { roBinds, hide };
}

/**
 * Root: bwrap (as the sandbox uid) reads its sources from a private staging
 * tmpfs (see STAGE_SCRIPT); otherwise straight from their host paths.
 */
function stagingFor(
  setup: Setup,
  opts: LaunchOptions,
  res: SandboxResources,
  roBinds: string[],
  packages: Array<{ source: string; name: string }>,
  skillsDir: string | undefined,
): Staging {
  const dir = setup.root ? setup.stageDir : undefined;
  return {
    dir,
    sources: [
      { source: res.volumeDir, name: "workspace" },
      { source: res.binding.socketPath, name: "egress.sock" },
      ...(opts.caBundle ? [{ source: opts.caBundle, name: "ca-bundle.pem" }] : []),
      ...(skillsDir ? [{ source: skillsDir, name: "skills" }] : []),
      ...roBinds.map((path, i) => ({ source: path, name: `rt${i}` })),
      ...packages.map(({ source, name }) => ({ source, name })),
    ],
    at: (path, name) => (dir ? join(dir, name) : path),
  };
}

function layoutFor(
  deps: LaunchDeps,
  req: LaunchRequest,
  paths: {
    roBinds: string[];
    hide: string[];
    staging: Staging;
    packages: Array<{ source: string; dest: string; name: string }>;
  },
): BwrapLayout {
  const { setup, opts } = deps;
  const { spec, resources: res } = req;
  const { roBinds, hide, staging, packages } = paths;
  return {
    uid: setup.root ? undefined : res.meta.uid,
    gid: setup.root ? undefined : res.meta.gid,
    disableUserns: setup.disableUserns,
    roBinds: [
      ...roBinds.map((path, i) => ({ source: staging.at(path, `rt${i}`), dest: path })),
      ...packages.map((p) => ({ source: staging.at(p.source, p.name), dest: p.dest })),
    ],
    hide,
    volumeSource: staging.at(res.volumeDir, "workspace"),
    volumeDest: res.pool ? POOL_VOLUMES : SANDBOX_WORKSPACE,
    egressSource: staging.at(res.binding.socketPath, "egress.sock"),
    ...(opts.caBundle ? { caBundleSource: staging.at(opts.caBundle, "ca-bundle.pem") } : {}),
    ...(spec.skillsDir
      ? {
          skills: {
            source: staging.at(spec.skillsDir, "skills"),
            dest: res.pool ? POOL_SKILLS : SANDBOX_SKILLS,
          },
        }
      : {}),
    etc: etcFiles(
      res.meta.uid,
      res.meta.gid,
      setup.shell.endsWith("bash") ? "/bin/bash" : "/bin/sh",
    ),
    seccomp: setup.seccomp,
    tmpBytes: setup.tmpSize
      ? (opts.tmpMb ?? Math.max(16, Math.floor(spec.limits.memoryMb / 4))) * MiB
      : undefined,
    env: envFor(deps, req, packages.length > 0),
    fds: FDS,
  };
}

function envFor(deps: LaunchDeps, req: LaunchRequest, packages: boolean): Record<string, string> {
  const pool = req.resources.pool;
  const path = `${dirname(deps.launcher.nodePath)}:/usr/local/bin:/usr/bin:/bin`;
  const env = workerEnv(
    req.spec,
    {
      // Nix packages (the person's profile) come first, so what they chose is what runs.
      ...(packages ? packageEnv(path) : { PATH: path }),
      HOME: pool ? "/tmp" : SANDBOX_WORKSPACE,
    },
    pool
      ? {
          LOBU_EGRESS_SOCKET: SANDBOX_EGRESS_SOCKET,
          LOBU_WORKER_MODE: "pool",
          LOBU_VOLUMES_ROOT: POOL_VOLUMES,
        }
      : { LOBU_EGRESS_SOCKET: SANDBOX_EGRESS_SOCKET, LOBU_VOLUME: SANDBOX_WORKSPACE },
  );
  if (deps.opts.caBundle) env.LOBU_CA_BUNDLE = SANDBOX_CA_BUNDLE;
  if (req.spec.skillsDir) {
    if (pool) env.LOBU_SKILLS_ROOT = POOL_SKILLS;
    else env.LOBU_SKILLS_DIR = SANDBOX_SKILLS;
  }
  return env;
}

/** Node flags giving the worker's heap its share of the memory limit (unless the launcher sets one). */
function heapFlags(launcher: WorkerLauncher, limits: SandboxLimits, heapFraction = 0.75): string[] {
  return heapFraction > 0 && !launcher.nodeArgs.some((a) => a.startsWith("--max-old-space-size"))
    ? [`--max-old-space-size=${Math.max(32, Math.floor(limits.memoryMb * heapFraction))}`]
    : [];
}

/** Root: stage the sources, then become the sandbox uid for bwrap; otherwise bwrap as it is. */
function commandFor(
  setup: Setup,
  res: SandboxResources,
  staging: Staging,
  sandboxed: string[],
): string[] {
  if (!staging.dir) return sandboxed;
  return stageArgv(
    setup.unshare!,
    setup.shell,
    staging.dir,
    staging.sources,
    [
      setup.setpriv!,
      `--reuid=${res.meta.uid}`,
      `--regid=${res.meta.gid}`,
      "--clear-groups",
      "--",
      ...sandboxed,
    ],
    res.pool ? res.volumeDir : dirname(res.volumeDir),
  );
}

/** bwrap's --info-fd JSON: the host pid of the sandbox's init (`child-pid`). */
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
