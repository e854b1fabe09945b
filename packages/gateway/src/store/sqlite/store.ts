import type { Store, StoreIssue } from "../port.ts";
import { ReadCachingKv } from "../read-cache.ts";
import { closedError, log } from "../shared.ts";
import { Db, type SqliteOptions } from "./db.ts";
import { SqliteKeyValue } from "./kv.ts";
import { SqliteLocks } from "./locks.ts";
import { SqlitePubSub } from "./pubsub.ts";
import { SqliteQueue } from "./queue.ts";
import { SqliteStreams } from "./streams.ts";

/** How often expired rows are deleted (reads already ignore them). */
const SWEEP_INTERVAL_MS = 60_000;

/**
 * The embedded store: one SQLite file in WAL mode, owned by one gateway
 * process (blocking reads, pub/sub and queue signals are in-process).
 */
export class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  /** Reads of watched keys are cached (read-cache.ts); `rawKv` is the adapter itself. */
  readonly kv: ReadCachingKv;
  readonly rawKv: SqliteKeyValue;
  readonly queue: SqliteQueue;
  readonly streams: SqliteStreams;
  readonly locks: SqliteLocks;
  readonly pubsub: SqlitePubSub;
  #db: Db | undefined;
  #sweeper: NodeJS.Timeout;

  constructor(path: string, opts: SqliteOptions = {}) {
    this.#db = new Db(path, opts);
    const db = () => {
      if (!this.#db) throw closedError("sqlite");
      return this.#db;
    };
    this.rawKv = new SqliteKeyValue(db);
    this.kv = new ReadCachingKv(this.rawKv, { shared: false });
    this.queue = new SqliteQueue(db);
    this.streams = new SqliteStreams(db);
    this.locks = new SqliteLocks(db);
    this.pubsub = new SqlitePubSub(() => void db());
    this.#sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  get path(): string {
    return this.#db?.path ?? "";
  }

  async ping(): Promise<void> {
    if (!this.#db) throw closedError("sqlite");
    this.#db.stmt("SELECT 1").get();
  }

  /**
   * Warns when the file is not in WAL mode (some file systems refuse it): the
   * store's durability and concurrency rely on WAL.
   */
  async diagnose(): Promise<StoreIssue[]> {
    if (!this.#db) throw closedError("sqlite");
    if (this.#db.path === ":memory:") return [];
    const row = this.#db.stmt("PRAGMA journal_mode").get();
    const mode = String(row?.journal_mode);
    if (mode === "wal") return [];
    return [
      {
        level: "warn",
        problem: `the SQLite store at ${this.#db.path} is in journal mode "${mode}", not WAL`,
        fix: "Put the data directory on a local file system (network file systems cannot share WAL memory).",
      },
    ];
  }

  /** Delete everything that has expired; returns how many rows/streams went. */
  sweep(now = Date.now()): number {
    if (!this.#db) return 0;
    try {
      return (
        this.rawKv.sweep(now) +
        this.queue.sweep(now) +
        this.streams.sweep(now) +
        this.locks.sweep(now)
      );
    } catch (err) {
      log.warn({ err }, "sqlite store sweep failed");
      return 0;
    }
  }

  async close(): Promise<void> {
    if (!this.#db) return;
    clearInterval(this.#sweeper);
    this.queue.close();
    this.streams.close();
    this.pubsub.close();
    const db = this.#db;
    this.#db = undefined;
    await db.close();
  }
}
