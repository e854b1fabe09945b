import { LobuError } from "@lobu/core";
import type { Logger } from "pino";
import { type SnapshotInfo, snapshotTime, type VolumeSnapshots } from "../sandbox/snapshots.ts";
import {
  healthAfterRestore,
  repairNotice,
  resetNotice,
  snapshotProvenBad,
} from "./sandbox-health.ts";
import type { SandboxRecords } from "./sandbox-records.ts";

/** Audit sink for automatic repairs. */
export type RepairAudit = (entry: {
  action: string;
  actor: string;
  sandboxId: string;
  agentId?: string;
  details?: Record<string, unknown>;
}) => void;

export interface RestoreDeps {
  snapshots: VolumeSnapshots;
  records: SandboxRecords;
  volumeDir: (id: string) => string;
  log: Logger;
  audit?: RepairAudit;
}

/**
 * Repair a stopped sandbox: replace its volume with its newest good snapshot
 * (an empty volume when none is left), mark it healthy and queue a notice for
 * its user. A snapshot restored by an earlier repair that did not help is
 * marked bad first. Resolves with the snapshot restored.
 */
export async function repairVolume(
  deps: RestoreDeps,
  id: string,
  reason: string,
  detail?: string,
): Promise<SnapshotInfo | undefined> {
  const record = await deps.records.get(id);
  const bad = snapshotProvenBad(record?.health, reason);
  if (bad) await deps.snapshots.markBad(id, bad.name, bad.why);
  const restored = await deps.snapshots.restore(id, deps.volumeDir(id));
  await recordRestore(deps.records, id, {
    snapshot: restored,
    notice: repairNotice(reason, restored),
    reason,
    detail,
    by: "system",
  });
  deps.log.warn(
    { sandboxId: id, reason, detail, snapshot: restored?.name ?? null },
    "sandbox repaired",
  );
  deps.audit?.({
    action: "sandbox.repaired",
    actor: "system",
    sandboxId: id,
    agentId: record?.key.agentId,
    details: { reason, detail, snapshot: restored ? snapshotTime(restored.at) : null },
  });
  return restored;
}

/**
 * Operator reset of a stopped sandbox: restore its newest good snapshot or,
 * with `wipe`, delete its volume and snapshots. Its user is told in the next
 * turn. Resolves with the snapshot restored (none when wiped).
 */
export async function resetVolume(
  deps: RestoreDeps,
  id: string,
  opts: { wipe?: boolean; by?: string },
): Promise<SnapshotInfo | undefined> {
  const volumeDir = deps.volumeDir(id);
  let snapshot: SnapshotInfo | undefined;
  if (opts.wipe) {
    await deps.snapshots.wipe(id, volumeDir);
  } else {
    snapshot = await deps.snapshots.lastGood(id);
    if (!snapshot)
      throw new LobuError("no_snapshot", `sandbox ${id} has no snapshot to restore`, {
        status: 409,
        hint: `Snapshots are taken after successful turns. To start from an empty workspace instead, run \`lobu sandboxes reset ${id} --wipe\`.`,
      });
    await deps.snapshots.restore(id, volumeDir, snapshot);
  }
  await recordRestore(deps.records, id, {
    snapshot,
    notice: resetNotice(snapshot),
    reason: opts.wipe ? "wiped by an operator" : "reset by an operator",
    by: opts.by ?? "operator",
  });
  return snapshot;
}

/** Record a repair or reset: fresh health, the notice for the user, and what was done. */
async function recordRestore(
  records: SandboxRecords,
  id: string,
  done: { snapshot?: SnapshotInfo; notice: string; reason: string; detail?: string; by: string },
): Promise<void> {
  await records.patch(id, (r) => ({
    ...r,
    health: healthAfterRestore(done.snapshot),
    pendingNotice: done.notice,
    lastRepair: {
      at: Date.now(),
      reason: done.reason,
      ...(done.detail ? { detail: done.detail } : {}),
      snapshot: done.snapshot?.name ?? null,
      by: done.by,
    },
  }));
}
