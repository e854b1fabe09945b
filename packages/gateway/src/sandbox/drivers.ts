import type { LobuConfig } from "@lobu/core";
import type { Logger } from "pino";
import type { CgroupOptions } from "./cgroups.ts";
import type { SandboxDriver } from "./driver.ts";
import { createHostDriver } from "./host-driver.ts";
import type { WorkerLaunchConfig } from "./launcher.ts";
import type { PackageMounts } from "./process/packages.ts";
import { createProcessDriver } from "./process-driver.ts";
import { createVirtualDriver } from "./virtual-driver.ts";

/** The name `sandbox.driver` gives a driver in lobu.toml. */
export type DriverName = Exclude<LobuConfig["sandbox"]["driver"], "auto">;

/** What every driver is created from (runtime/drivers.ts derives it from lobu.toml and the data dir). */
export interface DriverSetup {
  /** The driver's own state (uids, pool state), under the data dir. */
  stateDir: string;
  /** Where volumes (and their images) live. */
  volumesRoot: string;
  /**
   * Volumes move between gateways (`cluster.volumes = "shared"` or `"s3"`):
   * each is a plain directory, never a loop-mounted image, since a mount would
   * stay on the host of a gateway that died, a second host mounting the same
   * ext4 image corrupts it, and a fetched volume is written as files.
   */
  sharedVolumes?: boolean;
  /** `sandbox.pool_size`: virtual sandboxes per pool process. */
  poolSize: number;
  logger: Logger;
  /** How workers are started (default: the `@lobu/worker` package). */
  launcher: WorkerLaunchConfig | undefined;
  /** How `process` sandboxes and the `virtual` driver's pool processes are confined. */
  confinement: { cgroup: CgroupOptions; caBundle: string; hidePaths: string[] };
  /** Nix packages to show in sandboxes (`[packages]`), for drivers that run programs. */
  packages?: PackageMounts;
  /** Parent of the sandboxes' skills folders (the virtual driver shows it to its pools). */
  skillsRoot?: string;
}

/**
 * A sandbox driver as the gateway knows it: a name for `sandbox.driver` and a
 * factory. Probing and describing are the driver's own (SandboxDriver.probe).
 */
export interface SandboxDriverPlugin {
  readonly name: DriverName;
  /**
   * `auto` tries these drivers in registry order and takes the first that works
   * here and isolates (the last one is the fallback); `why` is logged when the
   * first one is taken.
   */
  readonly auto?: { why: string };
  /** Runs agents without isolation: refused unless `sandbox.allow_unsandboxed = true`. */
  readonly unisolated?: boolean;
  /**
   * Why this driver's sandboxes cannot use Nix packages, when they cannot
   * (said to people who ask for one); drivers without it show them on PATH.
   */
  readonly noPackages?: string;
  create(setup: DriverSetup): SandboxDriver;
}

/** Every sandbox driver. A new driver is its module plus one entry here (and its name in the config schema). */
export const SANDBOX_DRIVERS: readonly SandboxDriverPlugin[] = [
  {
    name: "process",
    auto: { why: "namespaces and bubblewrap work here" },
    create: (s) =>
      createProcessDriver({
        stateDir: s.stateDir,
        logger: s.logger,
        launcher: s.launcher,
        ...s.confinement,
        ...(s.sharedVolumes ? { quota: "watch" as const } : {}),
        ...(s.packages ? { packages: s.packages } : {}),
      }),
  },
  {
    name: "virtual",
    auto: { why: "the virtual tier needs neither namespaces nor bubblewrap" },
    noPackages:
      "agents on this gateway run in the virtual tier, a JavaScript shell that cannot run programs, so Nix packages cannot be used there",
    create: (s) =>
      createVirtualDriver({
        stateDir: s.stateDir,
        volumesRoot: s.volumesRoot,
        poolSize: s.poolSize,
        logger: s.logger,
        launcher: s.launcher,
        process: { ...s.confinement, ...(s.sharedVolumes ? { quota: "watch" as const } : {}) },
        ...(s.skillsRoot ? { skillsRoot: s.skillsRoot } : {}),
      }),
  },
  {
    name: "host",
    unisolated: true,
    noPackages:
      "the host sandbox driver does not provide Nix packages (install programs on the host instead)",
    create: (s) => createHostDriver({ logger: s.logger, launcher: s.launcher }),
  },
];

/** The registered driver `name`. */
export function driverPlugin(name: DriverName): SandboxDriverPlugin {
  const plugin = SANDBOX_DRIVERS.find((d) => d.name === name);
  if (!plugin) throw new Error(`no sandbox driver "${name}" is registered`);
  return plugin;
}
