import { chmod, chown, realpath } from "node:fs/promises";
import { errorMessage, type Logger } from "@lobu/core";
import type { SandboxCgroup } from "../cgroups.ts";
import type { EgressBinder, EgressBinding, SandboxSpec } from "../driver.ts";
import { type UidAllocator, type VolumeMeta, writeVolumeMeta } from "../identity.ts";
import { adoptVolumeFiles, mountLoopVolume, type QuotaMode, unmount } from "../volume.ts";
import type { Setup } from "./detect.ts";

/** The host resources a process sandbox holds while it runs. */
export interface SandboxResources {
  /** Real path of the volume. */
  volumeDir: string;
  /** The volume's uid/gid (and disk image size). */
  meta: VolumeMeta;
  binding: EgressBinding;
  cgroup?: SandboxCgroup;
  quota: QuotaMode;
  /** A pool process of the virtual driver: all volumes mounted, no disk quota of its own. */
  pool: boolean;
}

/** Steps that undo a half-done start, run last-first by unwind(). */
export type UndoSteps = Array<() => Promise<unknown>>;

export interface ResourceDeps {
  setup: Setup;
  uids: UidAllocator;
  stateDir: string;
  /** The sandbox's cgroup name (unique per installation, see ProcessDriver). */
  cgroupName: string;
  log: Logger;
}

/**
 * Make the volume the sandbox's (its uid, its loop image under the `loop`
 * quota), open its egress socket and create its cgroup. Each step taken pushes
 * its undo onto `undo`, for the caller to unwind should the start fail later.
 */
export async function acquireResources(
  deps: ResourceDeps,
  spec: SandboxSpec,
  egress: EgressBinder,
  pool: boolean,
  undo: UndoSteps,
): Promise<SandboxResources> {
  const { setup, log } = deps;
  const volumeDir = await realpath(spec.volumeDir);
  let { meta, fresh } = await deps.uids.forVolume(spec.volumeDir);
  if (setup.quota === "loop" && !pool) {
    const mounted = await mountLoopVolume({
      volumeDir: spec.volumeDir,
      meta,
      diskMb: spec.limits.diskMb,
      stateDir: deps.stateDir,
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
    ? await setup.cgroups.create(deps.cgroupName, spec.limits)
    : undefined;
  if (cgroup) undo.push(() => cgroup.destroy());
  return { volumeDir, meta, binding, cgroup, quota: setup.quota, pool };
}

/** Run the undo steps of a failed start, last first; a failing step is logged, not thrown. */
export async function unwind(undo: UndoSteps, log: Logger): Promise<void> {
  for (const step of undo.reverse()) {
    await step().catch((e) => log.warn({ err: errorMessage(e) }, "cleanup after failed start"));
  }
}

/** Give back what a sandbox held once it has exited: cgroup, volume mount, egress socket. */
export async function releaseResources(res: SandboxResources, log: Logger): Promise<void> {
  const steps: Array<[string, () => Promise<unknown>]> = [
    ["cgroup", async () => res.cgroup?.destroy()],
    [
      "volume",
      async () => (res.quota === "loop" && !res.pool ? unmount(res.volumeDir, log) : undefined),
    ],
    ["egress", () => res.binding.close()],
  ];
  for (const [what, step] of steps) {
    await step().catch((err) =>
      log.warn({ err: errorMessage(err), what }, "sandbox cleanup failed"),
    );
  }
}
