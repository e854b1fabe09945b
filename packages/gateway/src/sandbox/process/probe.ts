import { randomBytes } from "node:crypto";
import { realpathSync } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { digest, errorMessage } from "@lobu/core";
import { bestEffort, type FailureLog } from "@lobu/core/best-effort";
import { isRoot } from "../commands.ts";
import type { DriverProbe, EgressBinder, SandboxInstance, SandboxSpec } from "../driver.ts";
import { deniedSyscalls } from "../seccomp.ts";
import type { Setup } from "./detect.ts";
import { rlimitArgs } from "./launch.ts";

/** What probe() asks of the process driver. */
export interface ProbeTarget {
  /** The driver's detection, without throwing. */
  detectForProbe(): Promise<{ setup?: Setup; error?: string }>;
  readonly options: { readonly seccomp?: boolean };
  /** Start and stop a trial sandbox: what went wrong, or undefined when all worked. */
  trial(): Promise<string | undefined>;
}

/**
 * probe() of the process driver: host prerequisites, the driver's own detection,
 * then a real trial sandbox. Never throws; `ok: false` comes with what to fix.
 */
export async function probeProcessDriver(driver: ProbeTarget): Promise<DriverProbe> {
  const details: string[] = [];
  const result = (ok: boolean): DriverProbe => ({ driver: "process", isolated: true, ok, details });
  try {
    if (process.platform !== "linux") {
      details.push(
        `the process driver needs Linux (namespaces, cgroups, bubblewrap); this is ${process.platform}: use sandbox.driver = "virtual"`,
      );
      return result(false);
    }
    const userns = await readFile("/proc/sys/user/max_user_namespaces", "utf8").catch(() => "");
    if (userns.trim() === "0")
      details.push("user namespaces are disabled: sysctl -w user.max_user_namespaces=15000");
    const clone = await readFile("/proc/sys/kernel/unprivileged_userns_clone", "utf8").catch(
      () => "",
    );
    if (clone.trim() === "0" && !isRoot())
      details.push(
        "unprivileged user namespaces are off: sysctl -w kernel.unprivileged_userns_clone=1",
      );
    const apparmor = await readFile(
      "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
      "utf8",
    ).catch(() => "");
    if (apparmor.trim() === "1")
      details.push(
        "AppArmor restricts user namespaces (Ubuntu 24.04+): add an AppArmor profile allowing userns for bwrap, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
      );
    const { setup, error } = await driver.detectForProbe();
    if (!setup) {
      details.push(error ?? "process driver unavailable");
      return result(false);
    }
    details.push(
      `bubblewrap: ${setup.bwrap}${setup.disableUserns ? "" : " (too old for --disable-userns: upgrade to ≥ 0.8 so agents cannot create nested user namespaces)"}`,
    );
    details.push(
      setup.root
        ? "running as root: each sandbox gets its own host uid"
        : "not root: sandboxes share the gateway's uid outside their user namespace (distinct uids only inside); run as root for per-sandbox host uids, cgroup limits and loop disk quotas",
    );
    details.push(...setup.cgroupDetails, setup.quotaDetail);
    details.push(
      setup.seccomp
        ? `seccomp: denies ${deniedSyscalls().join(", ")}`
        : `seccomp: off (${driver.options.seccomp === false ? "disabled by configuration" : `no filter for ${process.arch}`})`,
    );
    if (!setup.prlimit)
      details.push("prlimit (util-linux) missing: no rlimits (open files, file size, processes)");
    if (!setup.nsenter)
      details.push(
        "nsenter (util-linux) missing: operators cannot run commands in sandboxes (POST /api/v1/sandboxes/<id>/exec)",
      );
    if (!setup.shell.endsWith("bash"))
      details.push(
        "bash missing: inherited file descriptors are not closed before bwrap (install bash)",
      );

    // A real trial: a complete sandbox (uid, namespaces, limits, quota, runtime,
    // egress socket) whose worker checks its network and says ready.
    const failure = await driver.trial();
    if (failure) {
      details.push(`trial sandbox failed: ${failure.slice(0, 800)}`);
      return result(false);
    }
    details.push(
      "trial sandbox: ok (namespaces, own uid, limits, read-only runtime, loopback-only network, egress socket)",
    );
    return result(true);
  } catch (err) {
    details.push(`probe failed: ${errorMessage(err)}`);
    return result(false);
  }
}

/** The trial sandbox's worker: a file of its own, shown read-only in the trial sandbox. */
export const TRIAL_WORKER = realpathSync(
  fileURLToPath(new URL("./trial-worker.ts", import.meta.url)),
);

export interface TrialDeps {
  setup: Setup;
  /** The driver's state dir: the trial's volume and socket go in a fresh directory there. */
  stateDir: string;
  /** Node binary the sandbox runs (the launcher's). */
  nodePath: string;
  maxOpenFiles?: number;
  /** The driver's start, with the trial worker instead of the real one. */
  start(
    spec: SandboxSpec,
    egress: EgressBinder,
    worker: { argv: string[]; extraRoBinds: string[] },
  ): Promise<SandboxInstance>;
  stop(id: string, opts: { graceMs: number }): Promise<void>;
  /** Where a trial directory that could not be removed is reported. */
  log: FailureLog;
}

/**
 * Start and stop a throwaway sandbox whose worker is TRIAL_WORKER. Resolves
 * with what went wrong, or undefined when all worked.
 */
export async function runTrial(deps: TrialDeps): Promise<string | undefined> {
  // A fresh directory (and cgroup) per trial: back-to-back probes (auto selection,
  // `lobu doctor` next to a gateway) must not wait on each other's volume.
  const nonce = randomBytes(4).toString("hex");
  const dir = join(deps.stateDir, `probe-${nonce}`);
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
    id: `lobu-probe-${digest(deps.stateDir, 8)}-${nonce}`,
    key: { agentId: "probe", platform: "probe", userId: "probe", channelId: "probe" },
    volumeDir,
    limits: { memoryMb: 256, cpus: 1, pids: 64, diskMb: 16 },
    env: {},
  };
  try {
    const argv = [
      ...rlimitArgs(deps.setup, spec.limits, deps.maxOpenFiles),
      deps.nodePath,
      TRIAL_WORKER,
    ];
    const sandbox = await deps.start(spec, egress, { argv, extraRoBinds: [TRIAL_WORKER] });
    await deps.stop(spec.id, { graceMs: 2000 });
    const info = await sandbox.exited;
    return info.code === 0 ? undefined : `trial worker ended with ${JSON.stringify(info)}`;
  } catch (err) {
    return errorMessage(err);
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true }).catch(
      bestEffort(deps.log, "trial sandbox directory left behind", { dir }),
    );
  }
}
