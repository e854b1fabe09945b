/**
 * "202 means on disk": a durable write of the SQLite store resolves only after
 * an fdatasync of the write-ahead log that began after the transaction's frames
 * were written to it, and that sync runs off the event loop. Read from the
 * system calls themselves (strace) of a real process writing through the store.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const hasStrace = spawnSync("strace", ["-V"]).status === 0;
const dir = mkdtempSync(join(tmpdir(), "lobu-wal-sync-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const dbModule = pathToFileURL(
  fileURLToPath(new URL("../../src/store/sqlite/db.ts", import.meta.url)),
).href;

/** Writes `count` durable rows, one group commit each, printing `ACK i` as each resolves. */
const WRITER = `
import { writeSync } from "node:fs";
import { Db } from ${JSON.stringify(dbModule)};
const db = new Db(process.argv[2]);
db.raw.exec("CREATE TABLE IF NOT EXISTS t (v TEXT NOT NULL)");
writeSync(1, "START\\n");
const count = Number(process.argv[3]);
// Some alone, some several to a commit.
for (let i = 0; i < count; i += 1 + (i % 3)) {
  const batch = Array.from({ length: 1 + (i % 3) }, (_, k) => i + k).filter((n) => n < count);
  await Promise.all(batch.map((n) =>
    db.grouped(() => db.stmt("INSERT INTO t (v) VALUES (?)").run("row-" + n), { durable: true })
      .then(() => writeSync(1, "ACK " + n + "\\n"))));
}
await db.close();
`;

/** Many commits, enough log for several checkpoints, then `CLOSING` and a close. */
const CHECKPOINTS = `
import { statSync, writeSync } from "node:fs";
import { Db } from ${JSON.stringify(dbModule)};
const db = new Db(process.argv[2]);
db.raw.exec("CREATE TABLE IF NOT EXISTS t (v TEXT NOT NULL)");
writeSync(1, "START\\n");
const row = "x".repeat(3000);
// 2,400 commits, ~7,000 pages of log in all: under the 10,000 at which the main
// connection would checkpoint by itself (the thread may start late under strace).
for (let round = 0; round < 16; round++) {
  for (let i = 0; i < 150; i++) db.tx(() => db.stmt("INSERT INTO t (v) VALUES (?)").run(row + i));
  await new Promise((resolve) => setTimeout(resolve, 150));
}
// The checkpoint thread copies the log in its own time (slow to start under strace and
// load): wait until the database file holds most of the rows, then close.
const until = Date.now() + 60_000;
while (statSync(process.argv[2]).size < 5_000_000 && Date.now() < until) {
  await new Promise((resolve) => setTimeout(resolve, 100));
}
writeSync(1, "CLOSING\\n");
await db.close();
`;

interface Call {
  line: number;
  tid: number;
  name: string;
  fd: number;
  /** Line where the call returned (the same line unless another thread interleaved). */
  done: number;
  text: string;
}

/** The calls strace -f recorded, with unfinished/resumed pairs joined. */
function parse(trace: string): Call[] {
  const calls: Call[] = [];
  const open = new Map<string, Call>();
  trace.split("\n").forEach((raw, line) => {
    const resumed = /^(\d+)\s+<\.\.\. (\w+) resumed>/.exec(raw);
    if (resumed) {
      const call = open.get(`${resumed[1]}:${resumed[2]}`);
      if (call) {
        call.done = line;
        // The result (`= fd` of an openat) is on the resumed line.
        call.text += raw;
      }
      return;
    }
    const m = /^(\d+)\s+(\w+)\((\d+|AT_FDCWD)?/.exec(raw);
    if (!m) return;
    const call: Call = {
      line,
      tid: Number(m[1]),
      name: m[2]!,
      fd: Number(m[3] ?? -1),
      done: line,
      text: raw,
    };
    if (raw.includes("<unfinished ...>")) open.set(`${call.tid}:${call.name}`, call);
    calls.push(call);
  });
  return calls;
}

/** Runs `source` as a script under `strace -f` with `args`; the calls it made, parsed. */
function traced(name: string, source: string, args: string[], timeout: number): Call[] {
  const script = join(dir, `${name}.ts`);
  writeFileSync(script, source);
  const out = join(dir, `${name}.trace`);
  const run = spawnSync(
    "strace",
    [
      "-f",
      "-e",
      "trace=openat,pwrite64,write,fsync,fdatasync",
      "-o",
      out,
      process.execPath,
      script,
      ...args,
    ],
    { encoding: "utf8", timeout },
  );
  expect(run.status, run.stderr).toBe(0);
  return parse(readFileSync(out, "utf8"));
}

/** The script's own `text` line on its standard output. */
function marker(calls: Call[], text: string): Call {
  return calls.find((c) => c.name === "write" && c.text.includes(`"${text}\\n"`))!;
}

/** The descriptors `file` (exactly: not its -wal or -shm beside it) was opened on. */
function openedOn(calls: Call[], file: string): Set<number> {
  return new Set(
    calls
      .filter((c) => c.name === "openat" && c.text.includes(`${file}"`))
      .map((c) => Number(/= (\d+)$/.exec(c.text)?.[1])),
  );
}

describe.skipIf(!hasStrace)("SQLite store: durable writes and the log's fsync", () => {
  it("acknowledges a durable write only after an fdatasync of the log that followed its frames, made off the event loop", () => {
    const db = join(dir, "durable.db");
    const count = 12;
    const calls = traced("writer", WRITER, [db, String(count)], 60_000);
    const start = marker(calls, "START");
    expect(start).toBeDefined();
    const main = start.tid;
    const after = calls.filter((c) => c.line > start.line);
    // Every descriptor the log was opened on (SQLite's own, and the store's for its syncs).
    const logFds = openedOn(calls, `${db}-wal`);
    expect(logFds.size).toBeGreaterThan(0);
    const acks = after.filter((c) => c.name === "write" && c.fd === 1 && c.text.includes('"ACK '));
    expect(acks).toHaveLength(count);
    for (const ack of acks) {
      const lastFrame = after
        .filter((c) => c.name === "pwrite64" && logFds.has(c.fd) && c.line < ack.line)
        .at(-1)!;
      expect(lastFrame, ack.text).toBeDefined();
      const synced = after.some(
        (c) =>
          (c.name === "fdatasync" || c.name === "fsync") &&
          logFds.has(c.fd) &&
          c.line > lastFrame.line &&
          c.done < ack.line,
      );
      expect(synced, `no sync of the log between its last frame and ${ack.text}`).toBe(true);
    }
    // The syncs ran on the thread pool: the event loop's thread never waited for one.
    const syncs = after.filter((c) => c.name === "fdatasync" || c.name === "fsync");
    expect(syncs.length).toBeGreaterThan(0);
    expect(syncs.filter((c) => c.tid === main && c.line < acks.at(-1)!.line)).toEqual([]);
    expect(readFileSync(db).subarray(0, 15).toString()).toBe("SQLite format 3");
  });

  it("copies the log into the database on a thread of its own, never in a commit on the event loop", () => {
    const db = join(dir, "checkpoints.db");
    const calls = traced("checkpoints", CHECKPOINTS, [db], 150_000);
    const [start, closing] = [marker(calls, "START"), marker(calls, "CLOSING")];
    expect(start && closing).toBeTruthy();
    const main = start.tid;
    // The database file itself (not its -wal or -shm): written and synced only by checkpoints.
    const dbFds = openedOn(calls, db);
    const during = calls.filter(
      (c) => c.line > start.line && c.line < closing.line && dbFds.has(c.fd),
    );
    const copies = during.filter((c) => c.name === "pwrite64");
    // 2,400 commits of 3 KB rows: several checkpoints' worth, all made elsewhere.
    expect(copies.length).toBeGreaterThan(100);
    expect(copies.filter((c) => c.tid === main)).toEqual([]);
    expect(during.filter((c) => c.tid === main && /sync/.test(c.name))).toEqual([]);
  }, 180_000);
});
