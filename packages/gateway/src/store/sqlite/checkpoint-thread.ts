/**
 * Entry point of the SQLite store's checkpoint thread (see checkpointer.ts): its own
 * connection to the database file, which copies the write-ahead log's frames into the
 * database now and then, so the gateway's event loop never does (a checkpoint writes
 * the pages and syncs the log and the database: tens of ms under load).
 */
import { DatabaseSync } from "node:sqlite";
import { parentPort, workerData } from "node:worker_threads";

const { path, everyMs, synchronous, busyTimeoutMs } = workerData as {
  path: string;
  everyMs: number;
  synchronous: "FULL" | "NORMAL";
  busyTimeoutMs: number;
};

const db = new DatabaseSync(path, { timeout: busyTimeoutMs });
// NORMAL or FULL: the log is synced before its frames are copied, the database after.
db.exec(`PRAGMA synchronous = ${synchronous}`);
// PASSIVE: never waits for the writer, copies what readers allow; an error ends the
// thread, and the main connection then checkpoints by itself again.
const timer = setInterval(() => db.exec("PRAGMA wal_checkpoint(PASSIVE)"), everyMs);

parentPort?.on("message", () => {
  clearInterval(timer);
  db.close();
  parentPort?.close();
});
