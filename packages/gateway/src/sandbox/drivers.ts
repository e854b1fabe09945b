import type { LobuConfig } from "@lobu/core";
import type { Logger } from "pino";
import type { CgroupOptions } from "./cgroups.ts";
import { createDockerDriver } from "./docker-driver.ts";
import type { SandboxDriver } from "./driver.ts";
import { createHostDriver } from "./host-driver.ts";
import { createKubernetesDriver } from "./kubernetes-driver.ts";
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
  /** `sandbox.process_mode`: `pooled` runs the process tier on the virtual driver's pools. */
  processMode?: LobuConfig["sandbox"]["process_mode"];
  logger: Logger;
  /** How workers are started (default: the `@lobu/worker` package). */
  launcher: WorkerLaunchConfig | undefined;
  /** How `process` sandboxes and the `virtual` driver's pool processes are confined. */
  confinement: { cgroup: CgroupOptions; caBundle: string; hidePaths: string[] };
  /** Nix packages to show in sandboxes (`[packages]`), for drivers that run programs. */
  packages?: PackageMounts;
  /** Parent of the sandboxes' skills folders (the virtual driver shows it to its pools). */
  skillsRoot?: string;
  /** `[sandbox.docker]` and `[sandbox.kubernetes]` of lobu.toml. */
  sections: Pick<LobuConfig["sandbox"], "docker" | "kubernetes">;
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
      s.processMode === "pooled"
        ? createPooledProcessDriver(s)
        : createProcessDriver({
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
    name: "docker",
    noPackages:
      "agents on this gateway run in containers, which show the sandbox image's programs rather than Nix packages",
    create: (s) =>
      createDockerDriver({
        stateDir: s.stateDir,
        image: s.sections.docker.image,
        runtime: s.sections.docker.runtime,
        socketPath: s.sections.docker.socket,
        tmpMb: s.sections.docker.tmp_mb,
        logger: s.logger,
        launcher: s.launcher,
        caBundle: s.confinement.caBundle,
      }),
  },
  {
    name: "kubernetes",
    noPackages:
      "agents on this gateway run in Kubernetes pods, which show the sandbox image's programs rather than Nix packages",
    create: (s) => {
      const k = s.sections.kubernetes;
      const [, host = "0.0.0.0", port = "8090"] = /^(.*):(\d+)$/.exec(k.worker_listen) ?? [];
      return createKubernetesDriver({
        namespace: k.namespace,
        image: k.image,
        command: k.command,
        runtimeClass: k.runtime_class,
        storageClass: k.storage_class,
        gatewayAddress: k.gateway_address,
        workerListen: { host: host.replace(/^\[|\]$/g, ""), port: Number(port) },
        gatewayLabels: k.gateway_labels,
        gatewayNamespace: k.gateway_namespace,
        ...(k.kubeconfig ? { kubeconfigPath: k.kubeconfig } : {}),
        caBundle: s.confinement.caBundle,
        logger: s.logger,
        launcher: s.launcher,
      });
    },
  },
  {
    name: "host",
    unisolated: true,
    noPackages:
      "the host sandbox driver does not provide Nix packages (install programs on the host instead)",
    create: (s) => createHostDriver({ logger: s.logger, launcher: s.launcher }),
  },
];

/**
 * `process_mode = "pooled"`: agent loops in the virtual driver's shared pools,
 * each conversation's bash commands in a bubblewrap sandbox of its own
 * (process/tool-sandbox.ts). Its sandboxes report the `virtual` driver.
 */
function createPooledProcessDriver(s: DriverSetup): SandboxDriver {
  return createVirtualDriver({
    stateDir: s.stateDir,
    volumesRoot: s.volumesRoot,
    poolSize: s.poolSize,
    logger: s.logger,
    launcher: s.launcher,
    isolation: "bwrap",
    process: { ...s.confinement, quota: "watch" },
    ...(s.skillsRoot ? { skillsRoot: s.skillsRoot } : {}),
    commandSandboxes: s.packages ? { packages: s.packages } : {},
  });
}

/** The registered driver `name`. */
export function driverPlugin(name: DriverName): SandboxDriverPlugin {
  const plugin = SANDBOX_DRIVERS.find((d) => d.name === name);
  if (!plugin) throw new Error(`no sandbox driver "${name}" is registered`);
  return plugin;
}
