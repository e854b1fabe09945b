import type { Logger } from "@lobu/core";
import type { CgroupOptions } from "../cgroups.ts";
import type { WorkerLaunchConfig, WorkerLauncher } from "../launcher.ts";
import type { QuotaMode } from "../volume.ts";
import type { PackageMounts } from "./packages.ts";

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
  /** Nix packages: the store and each sandbox's profile link, read-only, profile first on PATH. */
  packages?: PackageMounts;
}

export const MiB = 1024 * 1024;
