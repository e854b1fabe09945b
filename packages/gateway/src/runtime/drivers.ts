import { join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { digest, type LobuConfig, LobuError } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import type { Logger } from "pino";
import type { DriverProbe, SandboxDriver } from "../sandbox/driver.ts";
import { type DriverName, driverPlugin, SANDBOX_DRIVERS } from "../sandbox/drivers.ts";
import type { WorkerLaunchConfig } from "../sandbox/launcher.ts";
import type { PackageMounts } from "../sandbox/process/packages.ts";
import { directoryVolumes, S3Volumes, type VolumeBackend } from "../sandbox/volume-backends.ts";
import { skillViewsRoot } from "../skills/views.ts";

export interface SelectedDriver {
  driver: SandboxDriver;
  probe: DriverProbe;
  /** Environment every worker gets from this gateway (non-secret). */
  workerEnv: Record<string, string>;
  /** One line for `lobu run`'s summary. */
  description: string;
}

export interface DriverSelection {
  config: LobuConfig;
  dataDir: string;
  log: Logger;
  /** Host path of the CA bundle workers trust (shown read-only in every sandbox). */
  caBundlePath: string;
  /** How workers are started (embedding and tests: another worker entry); default: this checkout's worker. */
  worker?: WorkerLaunchConfig;
  /** Nix packages to show in sandboxes (when `[packages]` is on and Nix is installed). */
  packages?: PackageMounts;
}

/**
 * Where sandbox volumes live: under the data dir, or (`cluster.volumes =
 * "shared"`) under the directory every gateway mounts, so whichever gateway
 * runs a conversation finds its workspace and transcript.
 */
export function volumesRoot(config: Pick<LobuConfig, "cluster">, dataDir: string): string {
  const { volumes, volumes_path } = config.cluster;
  return volumes === "shared" && volumes_path
    ? join(volumes_path, "volumes")
    : join(dataDir, "volumes");
}

/** Where volumes live between runs: `[cluster] volumes` (docs/deploy/multi-gateway.md). */
export function volumeBackend(
  config: Pick<LobuConfig, "cluster">,
  dataDir: string,
  log: Logger,
): VolumeBackend {
  const { volumes, s3 } = config.cluster;
  if (volumes !== "s3" || !s3) return directoryVolumes(volumes === "shared" ? "shared" : "local");
  return new S3Volumes({
    // Credentials: the AWS SDK's usual chain (environment, profile, instance role).
    client: new S3Client({
      region: s3.region,
      forcePathStyle: s3.force_path_style,
      ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    }),
    bucket: s3.bucket,
    prefix: s3.prefix,
    stateDir: join(dataDir, "sandbox-state", "s3"),
    log: log.child({ component: "volumes" }),
  });
}

/** Where volume snapshots live: next to the volumes. */
export function snapshotsRoot(config: Pick<LobuConfig, "cluster">, dataDir: string): string {
  const { volumes, volumes_path } = config.cluster;
  return volumes === "shared" && volumes_path
    ? join(volumes_path, "snapshots")
    : join(dataDir, "snapshots");
}

/** Create the driver `name` without starting anything (used by `lobu doctor` too). */
export function createDriver(name: DriverName, sel: DriverSelection): SandboxDriver {
  return driverPlugin(name).create({
    stateDir: join(sel.dataDir, "sandbox-state"),
    volumesRoot: volumesRoot(sel.config, sel.dataDir),
    sharedVolumes: sel.config.cluster.volumes !== "local",
    poolSize: sel.config.sandbox.pool_size,
    processMode: sel.config.sandbox.process_mode,
    logger: sel.log,
    launcher: sel.worker,
    confinement: {
      // Unique per data dir, so two gateways on one host never share cgroups.
      cgroup: { name: `lobu-${digest(sel.dataDir, 8)}` },
      caBundle: sel.caBundlePath,
      // A data dir inside the runtime (e.g. under the checkout) must not show through.
      hidePaths: [sel.dataDir],
    },
    ...(sel.packages ? { packages: sel.packages } : {}),
    skillsRoot: skillViewsRoot(sel.dataDir),
    sections: { docker: sel.config.sandbox.docker, kubernetes: sel.config.sandbox.kubernetes },
  });
}

/**
 * `auto`: the first driver of the registry's `auto` list that works here and
 * isolates (`process`: bubblewrap and namespaces), otherwise the last one (the
 * `virtual` tier, which needs neither). Returns the chosen driver (already
 * probed, so nothing is tried twice), its probe and why it was chosen.
 */
export async function resolveAutoDriver(sel: DriverSelection): Promise<{
  name: DriverName;
  why: string;
  driver: SandboxDriver;
  probe: DriverProbe;
}> {
  const candidates = SANDBOX_DRIVERS.filter((d) => d.auto);
  let unavailable: string | undefined;
  for (const [i, plugin] of candidates.entries()) {
    const driver = createDriver(plugin.name, sel);
    const probe = await driver.probe();
    if ((probe.ok && probe.isolated) || i === candidates.length - 1) {
      const why = unavailable ?? plugin.auto?.why ?? "";
      return { name: plugin.name, why, driver, probe };
    }
    await driver
      .close()
      .catch(bestEffort(sel.log, "unused sandbox driver not closed", { driver: plugin.name }));
    unavailable = `the ${plugin.name} driver is unavailable (${probe.details.at(-1) ?? "no details"})`;
  }
  throw new Error("no sandbox driver is registered for `auto`");
}

/**
 * Pick and check the configured sandbox driver. An isolating driver that does
 * not work here is an error with instructions; the unisolated `host` driver
 * needs the operator's explicit `allow_unsandboxed = true`.
 */
export async function selectDriver(sel: DriverSelection): Promise<SelectedDriver> {
  const { config } = sel;
  let name = config.sandbox.driver;
  let auto: string | undefined;
  let driver: SandboxDriver;
  let probe: DriverProbe;
  if (name === "auto") {
    const chosen = await resolveAutoDriver(sel);
    ({ name, driver, probe } = chosen);
    auto = chosen.why;
    sel.log.info({ driver: name, why: chosen.why }, "sandbox driver chosen automatically");
  } else {
    if (driverPlugin(name).unisolated && !config.sandbox.allow_unsandboxed) {
      throw new LobuError(
        "unsandboxed_refused",
        `sandbox.driver = "${name}" runs agents without any isolation`,
        {
          hint: "Agents could read the gateway's files and reach any network. If this is really what you want (a trusted single-user setup), also set sandbox.allow_unsandboxed = true in lobu.toml.",
        },
      );
    }
    driver = createDriver(name, sel);
    probe = await driver.probe();
  }
  if (!probe.ok) {
    await driver
      .close()
      .catch(bestEffort(sel.log, "unusable sandbox driver not closed", { driver: name }));
    throw new LobuError(
      "sandbox_unavailable",
      `the ${name} sandbox driver cannot run on this machine:\n  - ${probe.details.join("\n  - ")}`,
      {
        hint: 'Run `lobu doctor` for details. On hosts without namespaces, use sandbox.driver = "virtual", or "host" with allow_unsandboxed = true for trusted setups only.',
      },
    );
  }
  if (!probe.isolated)
    sel.log.warn(
      { driver: name },
      "sandboxes are NOT isolated from the host (allow_unsandboxed = true)",
    );
  return {
    driver,
    probe,
    workerEnv: { LOBU_CA_BUNDLE: sel.caBundlePath },
    description: `${name}${probe.isolated ? "" : " (NOT isolated)"}${auto ? ` (auto: ${auto})` : ""}`,
  };
}
