import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp } from "node:fs/promises";
import { LobuError, type Logger } from "@lobu/core";
import { type CgroupManager, detectCgroups } from "../cgroups.ts";
import { isRoot, run, which } from "../commands.ts";
import { seccompProgram } from "../seccomp.ts";
import { loopQuotaSupport, type QuotaMode } from "../volume.ts";
import type { ProcessDriverOptions } from "./options.ts";

/** What the process driver found on this host (see detectSetup). */
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

/** The options detection reads. */
export type DetectOptions = Pick<
  ProcessDriverOptions,
  "stateDir" | "bwrapPath" | "stageDir" | "cgroup" | "quota" | "seccomp"
>;

/**
 * Find bubblewrap and its helpers, the cgroup controllers and the disk quota
 * mechanism usable here. Throws `sandbox_unavailable` with what to install or
 * change when the process driver cannot run on this host.
 */
export async function detectSetup(opts: DetectOptions, logger: Logger): Promise<Setup> {
  if (process.platform !== "linux")
    throw new LobuError("sandbox_unavailable", "the process sandbox driver needs Linux", {
      status: 500,
      hint: 'Use sandbox.driver = "virtual" on this host, or run the gateway on Linux.',
    });
  const bwrap = which(opts.bwrapPath ?? "bwrap");
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
  const stageDir = root ? await makeStageDir(opts.stageDir) : undefined;
  await mkdir(opts.stateDir, { recursive: true, mode: 0o700 });
  const detection =
    opts.cgroup === false
      ? { details: ["cgroups disabled by configuration"] }
      : await detectCgroups({ ...opts.cgroup, log: logger });
  const { quota, quotaDetail } = await detectQuota(opts.stateDir, opts.quota ?? "auto", logger);
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
    seccomp: opts.seccomp === false ? undefined : seccompProgram(),
  };
  logger.info(
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

/** `loop` (a disk image per volume) where it works and is wanted, else the `watch` soft limit. */
async function detectQuota(
  stateDir: string,
  wanted: "auto" | QuotaMode,
  logger: Logger,
): Promise<{ quota: QuotaMode; quotaDetail: string }> {
  const watch = {
    quota: "watch" as const,
    quotaDetail: "disk quota: du watchdog (soft limit) plus RLIMIT_FSIZE",
  };
  if (wanted === "watch") return watch;
  const loop = await loopQuotaSupport(stateDir, logger);
  if (loop.ok) return { quota: "loop", quotaDetail: loop.detail };
  if (wanted === "loop")
    throw new LobuError("sandbox_unavailable", loop.detail, {
      status: 500,
      hint: "Set the quota to auto or watch, or fix the loop device setup.",
    });
  return { quota: "watch", quotaDetail: loop.detail };
}

async function makeStageDir(wanted: string | undefined): Promise<string> {
  const dir =
    wanted ?? (existsSync("/run") ? "/run/lobu-sandbox" : await mkdtemp("/tmp/lobu-stage-"));
  await mkdir(dir, { recursive: true, mode: 0o711 });
  await chmod(dir, 0o711);
  return dir;
}
