import { errorMessage, isLobuError } from "@lobu/core";
import { z } from "zod";
import type { ExitInfo } from "../sandbox/driver.ts";
import { snapshotTime } from "../sandbox/snapshots.ts";
import { VOLUME_BUSY } from "../sandbox/volume.ts";
import type { TurnHealth } from "./turn-outcome.ts";

/**
 * Self-repair policy: what counts against a sandbox, when it is broken, and
 * what its user is told after a repair. Pure functions over the health record;
 * the SandboxManager applies them (lifecycle, storage, snapshots).
 *
 * A sandbox is broken when its worker crashes or runs out of memory
 * CRASH_LIMIT times within CRASH_WINDOW_MS, its disk fills up, its saved state
 * cannot be loaded, its agent fails AGENT_FAILURE_LIMIT turns in a row, or it
 * fails to start START_FAILURE_LIMIT times in a row. Before it runs again its
 * volume is replaced by the newest snapshot not marked bad (or an empty
 * volume); the snapshot a repair restored is marked bad if the sandbox breaks
 * again before a turn succeeds on it. A successful turn clears the record.
 */

/** Self-repair bookkeeping of one sandbox (stored in its SandboxRecord). */
export const SandboxHealth = z.object({
  /** Abnormal exits (crash, OOM) since the last successful turn. */
  crashes: z.array(z.number()).optional(),
  /** Turns that failed inside the worker, in a row. */
  failures: z.number().optional(),
  /** Starts that failed, in a row. */
  startFailures: z.number().optional(),
  /** The sandbox must be repaired before it runs again (`reason` is shown to its user). */
  broken: z
    .object({ reason: z.string(), at: z.number(), detail: z.string().optional() })
    .optional(),
  /** Snapshot the last repair restored, until a turn succeeds on it. */
  restored: z.string().optional(),
});
export type SandboxHealth = z.infer<typeof SandboxHealth>;

/** This many abnormal exits (crash, OOM) within CRASH_WINDOW_MS mark a sandbox broken. */
export const CRASH_LIMIT = 2;
export const CRASH_WINDOW_MS = 600_000;
/** This many turns failing inside the worker in a row mark a sandbox broken. */
export const AGENT_FAILURE_LIMIT = 2;
/** This many failed starts in a row mark a sandbox broken (the volume may be what stops it). */
export const START_FAILURE_LIMIT = 2;

/**
 * How a failed turn reflects on its sandbox, as `classifyTurnEnd` (turn-outcome.ts)
 * decides it: the one place that reads worker error codes.
 */
export type TurnFailure = Extract<TurnHealth, { kind: "failed" }>;

/**
 * Health after a failed turn: the agent's failures in a row counted, and
 * `broken` set when the failure breaks the sandbox or the agent has failed
 * AGENT_FAILURE_LIMIT times in a row.
 */
export function afterTurnFailure(
  health: SandboxHealth,
  failure: TurnFailure,
  now: number,
): SandboxHealth {
  const failures = failure.counts ? (health.failures ?? 0) + 1 : health.failures;
  const reason =
    failure.breaks ??
    (failures !== undefined && failures >= AGENT_FAILURE_LIMIT
      ? `its agent failed ${failures} times in a row`
      : undefined);
  if (!reason) return { ...health, failures };
  return { ...health, failures, broken: { reason, at: now, detail: failure.detail } };
}

/** What counts as a crash: the worker died (crashed, or killed for memory) rather than being stopped. */
export function isCrash(exit: ExitInfo): boolean {
  return exit.reason === "crashed" || exit.reason === "oom";
}

/**
 * Health after the sandbox exited, or undefined when the exit says nothing
 * about it (stopped by the gateway). A full disk breaks it at once; crashes
 * break it once CRASH_LIMIT of them fall within CRASH_WINDOW_MS.
 */
export function afterExit(
  health: SandboxHealth | undefined,
  exit: ExitInfo,
  now: number,
): SandboxHealth | undefined {
  const next: SandboxHealth = { ...health };
  if (exit.reason === "disk_full") {
    next.broken = { reason: "its disk was full", at: now };
    return next;
  }
  if (!isCrash(exit)) return undefined;
  const crashes = [...(next.crashes ?? []), now].filter((t) => now - t < CRASH_WINDOW_MS);
  next.crashes = crashes;
  if (crashes.length >= CRASH_LIMIT)
    next.broken = {
      reason:
        exit.reason === "oom"
          ? `it ran out of memory ${crashes.length} times in a row`
          : `its agent crashed ${crashes.length} times in a row`,
      at: now,
      detail: `last exit: ${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`}`,
    };
  return next;
}

/** Whether a failed start counts against the sandbox (a volume held elsewhere for a moment does not). */
export function startFailureCounts(err: unknown): boolean {
  return !(isLobuError(err) && err.code === VOLUME_BUSY);
}

/** Health after a start that failed. */
export function afterStartFailure(health: SandboxHealth): SandboxHealth {
  return { ...health, startFailures: (health.startFailures ?? 0) + 1 };
}

/** Why to repair the sandbox after a failed start (undefined: not yet; START_FAILURE_LIMIT in a row). */
export function startFailuresBreak(
  health: SandboxHealth | undefined,
  err: unknown,
): { reason: string; detail: string } | undefined {
  if ((health?.startFailures ?? 0) < START_FAILURE_LIMIT) return undefined;
  return { reason: "it failed to start twice", detail: errorMessage(err).split("\n")[0]! };
}

/**
 * The snapshot to mark bad before a repair: the one the previous repair
 * restored, which did not help since the sandbox broke again before a turn
 * succeeded on it. (The repair then restores the newest snapshot not marked bad.)
 */
export function snapshotProvenBad(
  health: SandboxHealth | undefined,
  reason: string,
): { name: string; why: string } | undefined {
  return health?.restored ? { name: health.restored, why: `did not help: ${reason}` } : undefined;
}

/** Health right after a repair or reset: clean, remembering the snapshot restored (if any). */
export function healthAfterRestore(
  snapshot: { name: string } | undefined,
): SandboxHealth | undefined {
  return snapshot ? { restored: snapshot.name } : undefined;
}

/** Told to the user after an automatic repair. */
export function repairNotice(reason: string, restored: { at: number } | undefined): string {
  return restored
    ? `Your workspace was restored from the snapshot of ${snapshotTime(restored.at)} because ${reason}.`
    : `Your workspace was reset to an empty one because ${reason}, and no earlier snapshot was left to restore. Your administrator can still recover the old files.`;
}

/** Told to the user after an operator reset: restored from `snapshot`, or (none) wiped. */
export function resetNotice(snapshot: { at: number } | undefined): string {
  return snapshot
    ? `Your workspace was restored by an administrator from the snapshot of ${snapshotTime(snapshot.at)}.`
    : "Your workspace was wiped by an administrator: you are starting from an empty workspace.";
}
