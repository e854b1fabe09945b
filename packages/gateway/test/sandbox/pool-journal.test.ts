import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  blameFromJournal,
  clearPoolJournals,
  poolInstance,
  poolJournalPath,
  poolJournalScope,
} from "../../src/sandbox/pool-journal.ts";
import { scratch } from "./helpers.ts";

/**
 * Reading a dead pool's call journal: who is charged with the crash. The journal of a real
 * pool, and the whole path through the gateway, are covered by
 * test/e2e/sandboxes-fairness.test.ts.
 */

const { dir, cleanup } = scratch("lobu-journal-");
afterAll(cleanup);

function journal(instance: string, doc: unknown): string {
  const file = poolJournalPath(dir, "pool-0", instance);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, typeof doc === "string" ? doc : JSON.stringify(doc));
  return file;
}

const call = (sandboxId: string, tool: string, where: "main" | "thread") => ({
  sandboxId,
  tool,
  where,
  since: Date.now(),
});

describe("pool call journal", () => {
  it("charges the sandboxes whose calls ran on the main thread, no one else", async () => {
    const file = journal("i1", {
      version: 1,
      instance: "i1",
      at: Date.now(),
      calls: [call("sb_a", "read", "main"), call("sb_b", "bash", "thread")],
    });
    expect(await blameFromJournal(file, "i1")).toEqual({
      sandboxes: new Set(["sb_a"]),
      stalled: false,
    });
  });

  it("says when the watchdog ended a frozen pool", async () => {
    const file = journal("i2", {
      version: 1,
      instance: "i2",
      at: Date.now(),
      calls: [call("sb_c", "edit", "main")],
      stalled: { at: Date.now(), forMs: 21_000 },
    });
    expect(await blameFromJournal(file, "i2")).toEqual({
      sandboxes: new Set(["sb_c"]),
      stalled: true,
    });
  });

  it("charges no one without a journal of that very process", async () => {
    const none = { sandboxes: new Set(), stalled: false };
    expect(await blameFromJournal(poolJournalPath(dir, "pool-0", "missing"), "missing")).toEqual(
      none,
    );
    const other = journal("i3", {
      version: 1,
      instance: "someone-else",
      at: Date.now(),
      calls: [call("sb_a", "read", "main")],
    });
    expect(await blameFromJournal(other, "i3")).toEqual(none);
  });

  it("refuses a journal that is malformed or oversized", async () => {
    await expect(blameFromJournal(journal("i4", "{not json"), "i4")).rejects.toThrow();
    const big = journal("i5", "x".repeat(300 * 1024));
    await expect(blameFromJournal(big, "i5")).rejects.toThrow(/larger than expected/);
  });

  it("clears journals left by an earlier run of this gateway, never another gateway's", async () => {
    const mine = poolJournalScope(join(dir, "state-a"));
    // The same scope across restarts (read back from the state dir), another for another gateway.
    expect(poolJournalScope(join(dir, "state-a"))).toBe(mine);
    const theirs = poolJournalScope(join(dir, "state-b"));
    expect(theirs).not.toBe(mine);
    const left = journal(poolInstance(mine), "{}");
    const other = journal(poolInstance(theirs), "{}");
    await clearPoolJournals(dir, mine);
    expect(existsSync(left)).toBe(false);
    expect(existsSync(other)).toBe(true);
  });

  it("replaces a scope file that was tampered with", () => {
    const state = join(dir, "state-c");
    mkdirSync(state, { recursive: true });
    writeFileSync(join(state, "pool-journal-scope"), "../../etc\n");
    expect(poolJournalScope(state)).toMatch(/^[0-9a-f]{12}$/);
  });
});
