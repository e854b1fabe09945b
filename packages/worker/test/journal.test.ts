import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TurnJournal } from "../src/journal.ts";
import { tempDir } from "./virtual/helpers.ts";

/**
 * The turn journal is read back from the volume when a worker starts. What it
 * cannot read is reported and left out, never taken for a turn: a message
 * whose entry is lost runs again as a new one.
 */

async function journalWith(text: string): Promise<{ journal: TurnJournal; reports: string[] }> {
  const file = join(await tempDir("lobu-journal-"), "turns.json");
  writeFileSync(file, text);
  const reports: string[] = [];
  return { journal: new TurnJournal(file, (line) => reports.push(line)), reports };
}

describe("turn journal", () => {
  it("keeps sound entries and reports and skips unreadable ones", async () => {
    const { journal, reports } = await journalWith(
      JSON.stringify({
        m_done: { status: "done", leafBefore: null, text: "hi", at: 1 },
        m_started: { status: "started", leafBefore: "leaf_1", at: 2 },
        m_bad: { status: "finished", leafBefore: null, at: 3 },
        m_old: { status: "done", at: 4 },
      }),
    );
    expect(journal.get("m_done")).toEqual({ status: "done", leafBefore: null, text: "hi", at: 1 });
    expect(journal.get("m_started")?.leafBefore).toBe("leaf_1");
    expect(journal.get("m_bad")).toBeUndefined();
    expect(journal.get("m_old")).toBeUndefined();
    expect(reports).toEqual([
      expect.stringMatching(/entry m_bad .* unreadable \(status: .*\); skipped/),
      expect.stringMatching(/entry m_old .* unreadable \(leafBefore: .*\); skipped/),
    ]);
  });

  it("reports a journal that is not JSON, or not an object of turns, and starts empty", async () => {
    for (const text of ['{"m1": {"status": "do', "[1,2]"]) {
      const { journal, reports } = await journalWith(text);
      expect(journal.get("m1")).toBeUndefined();
      expect(reports).toEqual([expect.stringMatching(/turn journal .* its turns are forgotten/)]);
      // It still records new turns.
      journal.set("m2", { status: "started", leafBefore: null, at: 5 });
      expect(journal.get("m2")?.status).toBe("started");
    }
  });

  it("says nothing when there is no journal yet", async () => {
    const reports: string[] = [];
    const journal = new TurnJournal(join(await tempDir("lobu-journal-"), "turns.json"), (l) =>
      reports.push(l),
    );
    expect(journal.get("m1")).toBeUndefined();
    expect(reports).toEqual([]);
  });
});

describe("turn journal on disk", () => {
  it("appends a line per change and reads every change back", async () => {
    const file = join(await tempDir("lobu-journal-"), "turns.json");
    const journal = new TurnJournal(file);
    journal.set("m1", { status: "started", leafBefore: null, at: 1 });
    journal.set("m1", { status: "done", leafBefore: null, text: "one", at: 2 });
    journal.set("m2", { status: "started", leafBefore: "leaf", at: 3 });
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(lines).toHaveLength(3); // a snapshot, then one line per later change
    const again = new TurnJournal(file);
    expect(again.get("m1")).toEqual({ status: "done", leafBefore: null, text: "one", at: 2 });
    expect(again.get("m2")?.leafBefore).toBe("leaf");
  });

  it("skips a line torn by a crash, and the next change does not run on from it", async () => {
    const file = join(await tempDir("lobu-journal-"), "turns.json");
    const journal = new TurnJournal(file);
    journal.set("m1", { status: "done", leafBefore: null, text: "one", at: 1 });
    journal.set("m2", { status: "done", leafBefore: null, text: "two", at: 2 });
    appendFileSync(file, '["m3",{"status":"sta');
    const reports: string[] = [];
    const reopened = new TurnJournal(file, (l) => reports.push(l));
    expect(reopened.get("m3")).toBeUndefined();
    expect(reports).toEqual([expect.stringMatching(/not valid JSON \(cut off by a crash\?\)/)]);
    reopened.set("m4", { status: "started", leafBefore: null, at: 4 });
    const last = new TurnJournal(file, (l) => reports.push(l));
    expect(last.get("m2")?.text).toBe("two");
    expect(last.get("m4")?.status).toBe("started");
    expect(reports).toHaveLength(1);
  });

  it("compacts to the newest turns once the appended lines outnumber the turns kept", async () => {
    const file = join(await tempDir("lobu-journal-"), "turns.json");
    const journal = new TurnJournal(file);
    for (let i = 0; i < 450; i++)
      journal.set(`m${i}`, { status: "started", leafBefore: null, at: i });
    const lines = readFileSync(file, "utf8").trimEnd().split("\n");
    expect(lines.length).toBeLessThanOrEqual(201);
    const again = new TurnJournal(file);
    expect(again.get("m449")?.at).toBe(449);
    expect(again.get("m0")).toBeUndefined();
  });

  it("reads a journal in the older one-object format", async () => {
    const { journal } = await journalWith(
      JSON.stringify({ m1: { status: "done", leafBefore: null, text: "hi", at: 1 } }),
    );
    journal.set("m2", { status: "started", leafBefore: null, at: 2 });
    const file = (journal as unknown as { file: string }).file;
    const again = new TurnJournal(file);
    expect(again.get("m1")?.text).toBe("hi");
    expect(again.get("m2")?.status).toBe("started");
  });
});
