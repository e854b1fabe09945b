/**
 * Entry point of the pool's stall watchdog thread (see stall-watchdog.ts). It shares only
 * a heartbeat counter with the main thread and uses nothing the main thread must run:
 * synchronous file calls and a signal to its own process.
 */
import { readFileSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { workerData } from "node:worker_threads";

const { beat, journalFile, stallMs, checkMs } = workerData as {
  beat: Int32Array;
  journalFile?: string;
  stallMs: number;
  checkMs: number;
};

let last = Atomics.load(beat, 0);
let since = Date.now();

function markJournal(forMs: number): void {
  if (!journalFile) return;
  try {
    const doc = JSON.parse(readFileSync(journalFile, "utf8")) as Record<string, unknown>;
    doc.stalled = { at: Date.now(), forMs };
    writeFileSync(`${journalFile}.stall`, JSON.stringify(doc));
    renameSync(`${journalFile}.stall`, journalFile);
  } catch {
    // no journal: the crash is charged to no one
  }
}

setInterval(() => {
  const now = Atomics.load(beat, 0);
  if (now !== last) {
    last = now;
    since = Date.now();
    return;
  }
  const frozenMs = Date.now() - since;
  if (frozenMs < stallMs) return;
  markJournal(frozenMs);
  writeSync(
    2,
    `lobu-worker: the pool's main thread did not respond for ${Math.round(frozenMs / 1000)} s; ending the pool so the gateway restarts it\n`,
  );
  process.kill(process.pid, "SIGKILL");
}, checkMs);
