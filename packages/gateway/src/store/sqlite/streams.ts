/**
 * Append-only streams on SQLite. Ids are `<ms>-<seq>` like Redis stream ids:
 * the clock in ms, with a sequence for several entries in one ms (and for a
 * clock that went backwards). Blocking reads wait on an in-process emitter,
 * which is enough because one process owns the file.
 */
import { EventEmitter } from "node:events";
import type { EventStreams, StreamEntry } from "../port.ts";
import {
  blockMsOf,
  formatStreamId,
  limitOf,
  optionalMs,
  parseStreamId,
  type StreamId,
} from "../shared.ts";
import { type Db, num, numOrNull, str } from "./db.ts";
import { StreamTails } from "./stream-tails.ts";

const LIVE = "(expires_at IS NULL OR expires_at > :now)";
/** Streams at least this long have their length tracked in memory (SqliteStreams.#lengths). */
const COUNTED_FROM = 256;

/** An append as the followed streams' tails take it. */
interface Appended {
  entry: StreamEntry;
  /** The stream's last id before it. */
  previous: string | undefined;
  expiresAt: number | null;
}

function toEntry(row: Record<string, unknown>): StreamEntry {
  return { id: formatStreamId({ ms: num(row.ms), seq: num(row.seq) }), data: str(row.data) };
}

export class SqliteStreams implements EventStreams {
  #db: () => Db;
  #appended = new EventEmitter();
  /**
   * Entries per stream, for trimming to `maxLen` without counting: counted once
   * per stream and process, then kept up to date here (one process owns the file).
   * Trimming by `OFFSET maxLen` instead walked up to maxLen index entries on every
   * append: 10 ms at 20,000 entries, 60 ms at 100,000 (the audit and usage streams).
   * Short streams (most conversations' histories) are counted each time instead,
   * as cheap as that walk was, so the map holds only long ones.
   */
  #lengths = new Map<string, number>();
  /** The newest entries of followed streams: reads that need no query (stream-tails.ts). */
  #tails = new StreamTails();
  /** Set on close: blocked reads wake (every stream's waiters are called) and return []. */
  #closed = false;

  constructor(db: () => Db) {
    this.#db = db;
    this.#appended.setMaxListeners(0);
  }

  /**
   * Appends of one event-loop turn share one commit (`Db.grouped`): a turn writes
   * several events, the relay a usage and an audit record per model call.
   */
  async append(
    stream: string,
    data: string,
    opts: { maxLen?: number; ttlMs?: number } = {},
  ): Promise<string> {
    const maxLen = limitOf(opts.maxLen, "maxLen");
    const ttlMs = optionalMs(opts.ttlMs, "ttlMs");
    const db = this.#db();
    const appended = await this.#forgettingOnError(stream, () =>
      db.grouped(() => this.#appendIn(db, stream, data, maxLen, ttlMs)),
    );
    this.#tails.appended(stream, appended.entry, appended.previous, appended.expiresAt);
    this.#appended.emit(stream);
    return appended.entry.id;
  }

  #appendIn(
    db: Db,
    stream: string,
    data: string,
    maxLen: number | undefined,
    ttlMs: number | undefined,
  ): Appended {
    const now = Date.now();
    let last: StreamId | undefined;
    let expiresAt: number | null = null;
    const meta = db
      .stmt("SELECT last_ms, last_seq, expires_at FROM streams WHERE name = :stream")
      .get({ stream });
    if (meta) {
      const exp = numOrNull(meta.expires_at);
      if (exp !== null && exp <= now) this.#remove(db, stream);
      else {
        last = { ms: num(meta.last_ms), seq: num(meta.last_seq) };
        expiresAt = exp;
      }
    }
    const next: StreamId =
      last && last.ms >= now ? { ms: last.ms, seq: last.seq + 1 } : { ms: now, seq: 0 };
    db.stmt(
      "INSERT INTO stream_entries (stream, ms, seq, data) VALUES (:stream, :ms, :seq, :data)",
    ).run({ stream, ms: next.ms, seq: next.seq, data });
    // Without ttlMs an existing expiry is kept (Redis XADD leaves the TTL alone).
    db.stmt(
      `INSERT INTO streams (name, last_ms, last_seq, expires_at) VALUES (:stream, :ms, :seq, :exp)
       ON CONFLICT (name) DO UPDATE SET last_ms = excluded.last_ms, last_seq = excluded.last_seq,
         expires_at = coalesce(excluded.expires_at, streams.expires_at)`,
    ).run({ stream, ms: next.ms, seq: next.seq, exp: ttlMs === undefined ? null : now + ttlMs });
    if (ttlMs !== undefined) expiresAt = now + ttlMs;
    const length = this.#lengths.get(stream);
    if (length !== undefined) this.#lengths.set(stream, length + 1);
    if (maxLen !== undefined) this.#trim(db, stream, maxLen);
    return {
      entry: { id: formatStreamId(next), data },
      previous: last && formatStreamId(last),
      expiresAt,
    };
  }

  async range(
    stream: string,
    opts: { after?: string; limit?: number } = {},
  ): Promise<StreamEntry[]> {
    const after = opts.after === undefined ? { ms: -1, seq: -1 } : parseStreamId(opts.after);
    const limit = limitOf(opts.limit) ?? -1;
    return this.#range(stream, after, limit);
  }

  async revRange(
    stream: string,
    opts: { before?: string; limit?: number } = {},
  ): Promise<StreamEntry[]> {
    const before =
      opts.before === undefined
        ? { ms: Number.MAX_SAFE_INTEGER, seq: Number.MAX_SAFE_INTEGER }
        : parseStreamId(opts.before);
    const limit = limitOf(opts.limit) ?? -1;
    const db = this.#db();
    if (!this.#live(db, stream)) return [];
    return db
      .stmt(
        `SELECT ms, seq, data FROM stream_entries WHERE stream = :stream AND (ms, seq) < (:ms, :seq)
         ORDER BY ms DESC, seq DESC LIMIT :limit`,
      )
      .all({ stream, ms: before.ms, seq: before.seq, limit })
      .map(toEntry);
  }

  async read(
    stream: string,
    after: string | undefined,
    opts: { blockMs: number; limit?: number; signal?: AbortSignal },
  ): Promise<StreamEntry[]> {
    const cursor = after === undefined ? { ms: -1, seq: -1 } : parseStreamId(after);
    const limit = limitOf(opts.limit) ?? -1;
    const deadline = Date.now() + blockMsOf(opts.blockMs);
    const { signal } = opts;
    const aborted = () => this.#closed || signal?.aborted === true;
    // A followed stream's newest entries are in memory (#tails); the rest is read.
    const at = after === undefined ? undefined : formatStreamId(cursor);
    const entriesNow = () =>
      (at === undefined ? undefined : this.#tails.after(stream, at, limit)) ??
      this.#range(stream, cursor, limit);
    let entries = entriesNow();
    if (entries.length === 0 && at !== undefined) this.#tails.caughtUp(stream, at);
    while (entries.length === 0) {
      const wait = deadline - Date.now();
      if (wait <= 0 || aborted()) return [];
      await this.#waitForAppend(stream, wait, signal);
      if (aborted()) return [];
      entries = entriesNow();
    }
    return entries;
  }

  async length(stream: string): Promise<number> {
    const db = this.#db();
    if (!this.#live(db, stream)) return 0;
    const row = db
      .stmt("SELECT COUNT(*) AS n FROM stream_entries WHERE stream = :stream")
      .get({ stream });
    return num(row?.n ?? 0);
  }

  async remove(stream: string, ids: string[]): Promise<number> {
    const parsed = ids.map(parseStreamId);
    const db = this.#db();
    return this.#forgettingOnError(stream, () =>
      db.tx(() => {
        let removed = 0;
        const del = db.stmt(
          "DELETE FROM stream_entries WHERE stream = :stream AND ms = :ms AND seq = :seq",
        );
        for (const { ms, seq } of parsed) removed += Number(del.run({ stream, ms, seq }).changes);
        const length = this.#lengths.get(stream);
        if (length !== undefined) this.#lengths.set(stream, length - removed);
        if (removed > 0) this.#tails.forget(stream);
        return removed;
      }),
    );
  }

  async delete(stream: string): Promise<void> {
    const db = this.#db();
    db.tx(() => this.#remove(db, stream));
  }

  /** Wake blocked readers (they return []) ahead of closing the database. */
  close(): void {
    this.#closed = true;
    for (const stream of this.#appended.eventNames()) this.#appended.emit(stream);
  }

  /** Delete expired streams; returns how many. */
  sweep(now: number): number {
    const db = this.#db();
    return db.tx(() => {
      const expired = db
        .stmt("SELECT name FROM streams WHERE expires_at IS NOT NULL AND expires_at <= :now")
        .all({ now });
      for (const row of expired) this.#remove(db, str(row.name));
      return expired.length;
    });
  }

  #range(stream: string, after: StreamId, limit: number): StreamEntry[] {
    const db = this.#db();
    if (!this.#live(db, stream)) return [];
    return db
      .stmt(
        `SELECT ms, seq, data FROM stream_entries WHERE stream = :stream AND (ms, seq) > (:ms, :seq)
         ORDER BY ms, seq LIMIT :limit`,
      )
      .all({ stream, ms: after.ms, seq: after.seq, limit })
      .map(toEntry);
  }

  /** False when the stream has expired (its rows may not be swept yet). */
  #live(db: Db, stream: string): boolean {
    const row = db
      .stmt(`SELECT 1 FROM streams WHERE name = :stream AND NOT ${LIVE}`)
      .get({ stream, now: Date.now() });
    return row === undefined;
  }

  /** A rolled-back write leaves the tracked length wrong: count that stream again next time. */
  async #forgettingOnError<T>(stream: string, write: () => T | Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      this.#lengths.delete(stream);
      throw err;
    }
  }

  /** Drop the oldest entries beyond `maxLen` (the stream's length counted once, then tracked). */
  #trim(db: Db, stream: string, maxLen: number): void {
    let length = this.#lengths.get(stream);
    if (length === undefined) {
      const row = db
        .stmt("SELECT COUNT(*) AS n FROM stream_entries WHERE stream = :stream")
        .get({ stream });
      length = num(row?.n ?? 0);
    }
    if (length > maxLen) {
      const { changes } = db
        .stmt(
          `DELETE FROM stream_entries WHERE stream = :stream AND (ms, seq) IN (
             SELECT ms, seq FROM stream_entries WHERE stream = :stream
             ORDER BY ms, seq LIMIT :excess)`,
        )
        .run({ stream, excess: length - maxLen });
      length -= Number(changes);
      if (changes > 0) this.#tails.forget(stream);
    }
    if (length >= COUNTED_FROM) this.#lengths.set(stream, length);
    else this.#lengths.delete(stream);
  }

  #remove(db: Db, stream: string): void {
    this.#lengths.delete(stream);
    this.#tails.forget(stream);
    db.stmt("DELETE FROM stream_entries WHERE stream = :stream").run({ stream });
    db.stmt("DELETE FROM streams WHERE name = :stream").run({ stream });
  }

  /** Until `stream` is appended to (or the store closes), `ms` passes or `signal` aborts. */
  #waitForAppend(stream: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#appended.off(stream, done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#appended.on(stream, done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }
}
