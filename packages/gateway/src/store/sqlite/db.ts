/**
 * Opening the embedded database: pragmas, versioned schema and the transaction
 * helper every multi-statement operation goes through.
 */
import { closeSync, fdatasync, fdatasyncSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { LobuError } from "@lobu/core";
import { log } from "../shared.ts";
import { type Checkpointer, startCheckpointer } from "./checkpointer.ts";

/**
 * Schema migrations: entry `i` takes the database from version `i` to `i + 1`.
 * Append only; never edit a migration that has shipped.
 */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at INTEGER
  ) WITHOUT ROWID;
  CREATE INDEX kv_expires ON kv (expires_at) WHERE expires_at IS NOT NULL;

  -- seq is the global enqueue order (FIFO within a partition, fairness across them).
  CREATE TABLE queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    partition TEXT NOT NULL,
    payload TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    not_before INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX queue_messages_partition ON queue_messages (partition, seq);

  -- One row per non-empty partition: its head message and the lease on it.
  CREATE TABLE queue_partitions (
    name TEXT PRIMARY KEY,
    head_seq INTEGER NOT NULL,
    ready_at INTEGER NOT NULL,
    lease_token TEXT,
    lease_owner TEXT,
    lease_expires INTEGER
  ) WITHOUT ROWID;
  CREATE INDEX queue_partitions_head ON queue_partitions (head_seq);

  CREATE TABLE queue_dedupe (
    key TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX queue_dedupe_expires ON queue_dedupe (expires_at);

  -- The last id survives trimming so ids stay monotonic, as in Redis.
  CREATE TABLE streams (
    name TEXT PRIMARY KEY,
    last_ms INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    expires_at INTEGER
  ) WITHOUT ROWID;
  CREATE INDEX streams_expires ON streams (expires_at) WHERE expires_at IS NOT NULL;

  CREATE TABLE stream_entries (
    stream TEXT NOT NULL,
    ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (stream, ms, seq)
  ) WITHOUT ROWID;

  CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Log size (pages) at which this connection checkpoints by itself: 40 MB at 4 KB pages. */
const INLINE_CHECKPOINT_PAGES = 10_000;

export interface SqliteOptions {
  /**
   * When commits are fsynced. `normal` (default): queue enqueues are fsynced
   * (they are what chat platforms get acknowledged for); every other write
   * survives a crash of the process but may lose its last moments to a power
   * loss (never corrupting the file). `full`: every commit is fsynced, which
   * costs about a millisecond of blocked event loop per write.
   */
  synchronous?: "full" | "normal";
  /** How long to wait for another connection's write lock (ms). */
  busyTimeoutMs?: number;
}

/** A write waiting for the next group commit (`Db.grouped`). */
interface GroupedWrite {
  write: () => unknown;
  durable: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** A commit waiting for the write-ahead log's fsync. */
interface SyncWaiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A database handle plus a cache of prepared statements. */
export class Db {
  readonly raw: DatabaseSync;
  readonly path: string;
  #statements = new Map<string, StatementSync>();
  #syncAlways: boolean;
  /** Writes for the next group commit (see `grouped`). */
  #group: GroupedWrite[] = [];
  /** Durable commits waiting for the next fsync of the log (see `#afterLogSync`). */
  #syncWaiters: SyncWaiter[] = [];
  /** The commits the fsync in flight is for (undefined: none in flight). */
  #syncingFor: SyncWaiter[] | undefined;
  #closed = false;
  /** The write-ahead log, opened for its fsyncs. */
  #logFd: number | undefined;
  /** The database is in WAL mode, on a file (not in memory or on a file system refusing WAL). */
  #logged = false;
  #checkpointer: Checkpointer | undefined;

  constructor(path: string, opts: SqliteOptions = {}) {
    this.path = path;
    this.#syncAlways = opts.synchronous === "full";
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    try {
      this.raw = new DatabaseSync(path, { timeout: opts.busyTimeoutMs ?? 5000 });
    } catch (cause) {
      throw new LobuError("store_open_failed", `cannot open the SQLite store at ${path}`, {
        status: 500,
        hint: "Check that the data directory exists and is writable by the gateway.",
        cause,
      });
    }
    try {
      const mode = this.raw.prepare("PRAGMA journal_mode = WAL").get();
      this.#logged = path !== ":memory:" && mode?.journal_mode === "wal";
      this.raw.exec(`PRAGMA synchronous = ${this.#syncAlways ? "FULL" : "NORMAL"}`);
      this.#migrate();
      if (this.#logged) this.#checkpointElsewhere(opts.busyTimeoutMs ?? 5000);
    } catch (err) {
      this.raw.close();
      throw err;
    }
  }

  /**
   * Checkpoints (the log's frames copied into the database, with a sync of each)
   * happen on a thread of their own: inline, SQLite ran one in the commit that
   * crossed 1,000 pages of log, blocking the event loop for up to tens of ms, about
   * 0.4 ms per message at 150 messages a second (measured). This connection still
   * checkpoints if the log reaches INLINE_CHECKPOINT_PAGES (the thread fell behind),
   * and as before if the thread fails.
   */
  #checkpointElsewhere(busyTimeoutMs: number): void {
    this.raw.exec(`PRAGMA wal_autocheckpoint = ${INLINE_CHECKPOINT_PAGES}`);
    this.#checkpointer = startCheckpointer(this.path, {
      synchronous: this.#syncAlways ? "FULL" : "NORMAL",
      busyTimeoutMs,
      onFailed: (err) => {
        log.warn({ err, path: this.path }, "SQLite checkpoint thread failed; checkpointing inline");
        if (this.raw.isOpen) this.raw.exec("PRAGMA wal_autocheckpoint = 1000");
      },
    });
  }

  /** Prepared statement for `sql`, compiled once per handle. */
  stmt(sql: string): StatementSync {
    let s = this.#statements.get(sql);
    if (!s) {
      s = this.raw.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  /**
   * Run `fn` in a write transaction. BEGIN IMMEDIATE takes the write lock up
   * front so a concurrent writer (another process on the file) waits on the
   * busy timeout instead of failing mid-transaction.
   */
  tx<T>(fn: () => T): T {
    this.raw.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.raw.exec("COMMIT");
      return result;
    } catch (err) {
      if (this.raw.isTransaction) this.raw.exec("ROLLBACK");
      throw err;
    }
  }

  /**
   * A transaction whose commit is fsynced even in `normal` mode, inline: the
   * event loop waits for the disk. In WAL mode that sync also covers every
   * earlier commit, which only appended to the log. (Group commits sync off
   * the loop instead, see `grouped`.)
   */
  durableTx<T>(fn: () => T): T {
    if (this.#syncAlways) return this.tx(fn);
    this.raw.exec("PRAGMA synchronous = FULL");
    try {
      return this.tx(fn);
    } finally {
      this.raw.exec("PRAGMA synchronous = NORMAL");
    }
  }

  /**
   * Group commit: the writes of one event-loop turn run in one transaction (each
   * in its own savepoint, so one that throws fails alone), and each resolves only
   * once that transaction committed. A commit costs far more than the few rows of
   * a write (the WAL append, and an fsync when durable), and a busy gateway makes
   * dozens of small writes per turn of its loop (enqueues, turn events, audit and
   * usage records). `durable`: the write resolves only once the log holding its
   * commit is fsynced; the others of its group ride along. Pending writes are
   * committed by `close` first.
   *
   * That fsync runs on libuv's thread pool, not in the commit: the commit appends
   * the transaction's frames to the write-ahead log (`synchronous = NORMAL`), then
   * an `fdatasync` of the log that starts after the commit puts them on disk, and
   * WAL recovery replays them after a power loss. Frames leave the log only through
   * a checkpoint, which syncs the log before copying and the database after. One
   * fsync serves every commit made before it started. Inline, a sync blocked the
   * gateway's event loop for 2 ms per group commit under load (measured).
   */
  grouped<T>(write: () => T, opts: { durable?: boolean } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#group.push({
        write,
        durable: opts.durable === true,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (this.#group.length === 1) setImmediate(() => this.#commitGroup());
    });
  }

  #commitGroup(): void {
    const group = this.#group;
    if (group.length === 0) return;
    this.#group = [];
    const outcomes: Array<{ value: unknown } | { error: unknown }> = [];
    // Without a write-ahead log to sync afterwards, a durable group is fsynced in its commit.
    const commit =
      !this.#logged && group.some((w) => w.durable)
        ? this.durableTx.bind(this)
        : this.tx.bind(this);
    try {
      commit(() => {
        for (const item of group) {
          this.raw.exec("SAVEPOINT lobu_grouped");
          try {
            outcomes.push({ value: item.write() });
            this.raw.exec("RELEASE lobu_grouped");
          } catch (error) {
            this.raw.exec("ROLLBACK TO lobu_grouped");
            this.raw.exec("RELEASE lobu_grouped");
            outcomes.push({ error });
          }
        }
      });
    } catch (error) {
      // The commit itself failed: nothing of the group was written.
      for (const item of group) item.reject(error);
      return;
    }
    const settle = (item: GroupedWrite, i: number) => {
      const outcome = outcomes[i]!;
      if ("error" in outcome) item.reject(outcome.error);
      else item.resolve(outcome.value);
    };
    const durable: Array<[GroupedWrite, number]> = [];
    group.forEach((item, i) => {
      if (item.durable && !("error" in outcomes[i]!)) durable.push([item, i]);
      else settle(item, i);
    });
    if (durable.length === 0) return;
    // Committed, so a failed sync fails only the writes that had to be on disk.
    this.#afterLogSync().then(
      () => {
        for (const [item, i] of durable) settle(item, i);
      },
      (error) => {
        for (const [item] of durable) item.reject(error);
      },
    );
  }

  /** Resolves once an fsync of the log that started after this call has returned. */
  #afterLogSync(): Promise<void> {
    if (this.#syncAlways || !this.#logged) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#syncWaiters.push({ resolve, reject });
      if (this.#syncingFor === undefined) this.#syncNext();
    });
  }

  /** One fsync for every commit waiting when it starts; then the next, for those who came meanwhile. */
  #syncNext(): void {
    const waiting = this.#syncWaiters.splice(0);
    this.#syncingFor = undefined;
    if (waiting.length === 0 || this.#closed) return;
    let fd: number;
    try {
      fd = this.#logFd ??= openSync(`${this.path}-wal`, "r+");
    } catch (err) {
      for (const w of waiting) w.reject(err);
      return;
    }
    this.#syncingFor = waiting;
    fdatasync(fd, (err) => {
      for (const w of waiting) err ? w.reject(err) : w.resolve();
      // Closed meanwhile: the descriptor was kept open for this call (see close).
      if (this.#closed) this.#closeLog();
      else this.#syncNext();
    });
  }

  #closeLog(): void {
    if (this.#logFd === undefined) return;
    closeSync(this.#logFd);
    this.#logFd = undefined;
  }

  /**
   * Commits what waits, closes this connection at once, and resolves when the
   * checkpoint thread closed its own (a thread still starting opens the files anew).
   */
  close(): Promise<void> {
    if (this.raw.isOpen) this.#commitGroup();
    this.#closed = true;
    // Every commit still waiting for a sync, in flight or not, gets one now.
    const waiting = [...(this.#syncingFor ?? []), ...this.#syncWaiters.splice(0)];
    try {
      if (waiting.length > 0 && this.#logFd !== undefined) fdatasyncSync(this.#logFd);
      for (const w of waiting) w.resolve();
    } catch (err) {
      for (const w of waiting) w.reject(err);
    }
    // A sync in flight still uses the descriptor: its callback closes it.
    if (this.#syncingFor === undefined) this.#closeLog();
    this.#statements.clear();
    if (this.raw.isOpen) this.raw.close();
    const checkpointer = this.#checkpointer;
    this.#checkpointer = undefined;
    return checkpointer ? checkpointer.close() : Promise.resolve();
  }

  #migrate(): void {
    this.raw.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    this.tx(() => {
      const row = this.raw.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get();
      const current = row ? Number(row.value) : 0;
      if (current > SCHEMA_VERSION) {
        throw new LobuError(
          "store_schema_too_new",
          `the SQLite store at ${this.path} has schema version ${current}, newer than this gateway understands (${SCHEMA_VERSION})`,
          { status: 500, hint: "Upgrade Lobu, or point store at a different data directory." },
        );
      }
      for (let v = current; v < SCHEMA_VERSION; v++) this.raw.exec(MIGRATIONS[v]!);
      if (current !== SCHEMA_VERSION) {
        this.raw
          .prepare(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
          )
          .run(String(SCHEMA_VERSION));
      }
    });
  }
}

/** Row values come back as `SQLOutputValue`; these narrow them without casts everywhere. */
export function str(v: unknown): string {
  return String(v);
}

export function num(v: unknown): number {
  return Number(v);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}
