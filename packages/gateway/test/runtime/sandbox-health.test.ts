import { LobuError, type TurnErrorCode } from "@lobu/core";
import { describe, expect, it } from "vitest";
import {
  AGENT_FAILURE_LIMIT,
  afterExit,
  afterStartFailure,
  afterTurnFailure,
  CRASH_LIMIT,
  CRASH_WINDOW_MS,
  healthAfterRestore,
  isCrash,
  repairNotice,
  resetNotice,
  type SandboxHealth,
  snapshotProvenBad,
  startFailureCounts,
  startFailuresBreak,
  type TurnFailure,
} from "../../src/runtime/sandbox-health.ts";
import { classifyTurnEnd } from "../../src/runtime/turn-outcome.ts";
import { VOLUME_BUSY } from "../../src/sandbox/volume.ts";

/** The self-repair policy, without sandboxes: pure functions over the health record. */

/** What the one classification (turn-outcome.ts) says about a worker error. */
function judge(error: { code: TurnErrorCode; message: string }): TurnFailure {
  const health = classifyTurnEnd({
    t: "turn_end",
    sandboxId: "sb",
    turnId: "t",
    status: "error",
    text: "",
    error,
  }).health;
  if (health?.kind !== "failed") throw new Error("expected a failure");
  return health;
}

const T0 = Date.UTC(2026, 0, 2, 3, 4);
const crash = { code: null, signal: "SIGKILL", reason: "crashed" };

describe("turn failures", () => {
  it("breaks the sandbox at once when its disk is full or its state is damaged", () => {
    const disk = judge({ code: "worker_error", message: "write: ENOSPC, no space left" });
    expect(disk.breaks).toBe("its disk was full");
    expect(judge({ code: "state_corrupt", message: "bad json" }).breaks).toBe(
      "its saved state was damaged",
    );
    const health = afterTurnFailure({}, disk, T0);
    expect(health.broken).toEqual({
      reason: "its disk was full",
      at: T0,
      detail: "worker_error: write: ENOSPC, no space left",
    });
  });

  it("counts the agent's failures in a row and breaks it at the limit", () => {
    const failure = judge({ code: "agent_error", message: "model said no" });
    expect(failure).toMatchObject({ counts: true, breaks: undefined });
    let health: SandboxHealth = {};
    for (let i = 1; i < AGENT_FAILURE_LIMIT; i++) {
      health = afterTurnFailure(health, failure, T0);
      expect(health).toEqual({ failures: i });
    }
    health = afterTurnFailure(health, failure, T0);
    expect(health.broken?.reason).toBe(`its agent failed ${AGENT_FAILURE_LIMIT} times in a row`);
  });

  it("does not count errors that are not the agent's", () => {
    const busy = judge({ code: "busy", message: "another turn is running" });
    expect(busy).toMatchObject({ counts: false, breaks: undefined });
    expect(afterTurnFailure({ failures: 1 }, busy, T0)).toEqual({ failures: 1 });
  });

  it("shortens the message kept in the record", () => {
    const long = judge({ code: "state_corrupt", message: "x".repeat(1000) });
    expect(long.detail).toBe(`state_corrupt: ${"x".repeat(300)}`);
  });
});

describe("exits", () => {
  it("counts crashes and OOM kills, not stops", () => {
    expect(isCrash(crash)).toBe(true);
    expect(isCrash({ ...crash, reason: "oom" })).toBe(true);
    for (const reason of ["stopped", "idle", "broken", "repair", "disk_full"])
      expect(isCrash({ code: 0, signal: null, reason })).toBe(false);
  });

  it("leaves the health record alone after a stop", () => {
    expect(afterExit({ failures: 1 }, { code: 0, signal: null, reason: "idle" }, T0)).toBe(
      undefined,
    );
  });

  it("breaks the sandbox when its volume went over quota", () => {
    const health = afterExit(
      { failures: 1 },
      { code: null, signal: "SIGKILL", reason: "disk_full" },
      T0,
    );
    expect(health).toEqual({ failures: 1, broken: { reason: "its disk was full", at: T0 } });
  });

  it("breaks the sandbox after CRASH_LIMIT crashes within the window", () => {
    let health: SandboxHealth | undefined;
    for (let i = 0; i < CRASH_LIMIT - 1; i++) {
      health = afterExit(health, crash, T0 + i);
      expect(health?.broken).toBeUndefined();
    }
    health = afterExit(health, crash, T0 + CRASH_LIMIT);
    expect(health?.crashes).toHaveLength(CRASH_LIMIT);
    expect(health?.broken).toEqual({
      reason: `its agent crashed ${CRASH_LIMIT} times in a row`,
      at: T0 + CRASH_LIMIT,
      detail: "last exit: signal SIGKILL",
    });
  });

  it("forgets crashes older than the window", () => {
    const old = afterExit(undefined, crash, T0);
    const later = afterExit(old, { code: 137, signal: null, reason: "oom" }, T0 + CRASH_WINDOW_MS);
    expect(later).toEqual({ crashes: [T0 + CRASH_WINDOW_MS] });
  });

  it("says when memory was the cause", () => {
    const oom = { code: 1, signal: null, reason: "oom" };
    const health = afterExit(afterExit(undefined, oom, T0), oom, T0 + 1);
    expect(health?.broken).toMatchObject({
      reason: `it ran out of memory ${CRASH_LIMIT} times in a row`,
      detail: "last exit: code 1",
    });
  });
});

describe("start failures", () => {
  it("do not count when the volume is busy elsewhere for a moment", () => {
    expect(startFailureCounts(new LobuError(VOLUME_BUSY, "held"))).toBe(false);
    expect(startFailureCounts(new Error("bwrap: cannot mount"))).toBe(true);
  });

  it("ask for a repair the second time in a row", () => {
    const err = new Error("bwrap: cannot mount\nmore detail");
    const once = afterStartFailure({});
    expect(startFailuresBreak(once, err)).toBeUndefined();
    const twice = afterStartFailure(once);
    expect(startFailuresBreak(twice, err)).toEqual({
      reason: "it failed to start twice",
      detail: "bwrap: cannot mount",
    });
  });
});

describe("repairs", () => {
  it("mark the snapshot the last repair restored as bad when the sandbox broke again", () => {
    expect(snapshotProvenBad(undefined, "its disk was full")).toBeUndefined();
    expect(snapshotProvenBad({ crashes: [T0] }, "its disk was full")).toBeUndefined();
    expect(snapshotProvenBad({ restored: "s1" }, "its disk was full")).toEqual({
      name: "s1",
      why: "did not help: its disk was full",
    });
  });

  it("start over with a clean record that remembers the snapshot restored", () => {
    expect(healthAfterRestore({ name: "s1" })).toEqual({ restored: "s1" });
    expect(healthAfterRestore(undefined)).toBeUndefined();
  });

  it("tell the user what happened and why", () => {
    expect(repairNotice("its disk was full", { at: T0 })).toBe(
      "Your workspace was restored from the snapshot of 2026-01-02 03:04 UTC because its disk was full.",
    );
    expect(repairNotice("its disk was full", undefined)).toMatch(
      /^Your workspace was reset to an empty one because its disk was full, and no earlier snapshot/,
    );
    expect(resetNotice({ at: T0 })).toBe(
      "Your workspace was restored by an administrator from the snapshot of 2026-01-02 03:04 UTC.",
    );
    expect(resetNotice(undefined)).toMatch(/^Your workspace was wiped by an administrator/);
  });
});
