import type { KeyValue, SetOptions, UpdateOptions } from "../port.ts";
import {
  incrementOf,
  limitOf,
  notIntegerError,
  optionalMs,
  updateByCompareAndSet,
} from "../shared.ts";
import { type Db, numOrNull, str } from "./db.ts";

// A row is live while `expires_at` is null or in the future; expired rows are
// treated as absent by every statement and swept later.
const LIVE = "(expires_at IS NULL OR expires_at > :now)";

/** Escape GLOB metacharacters so a caller's prefix matches literally. */
function globPrefix(prefix: string): string {
  return prefix.replace(/[*?[]/g, (c) => `[${c}]`) + "*";
}

export class SqliteKeyValue implements KeyValue {
  #db: () => Db;

  constructor(db: () => Db) {
    this.#db = db;
  }

  async get(key: string): Promise<string | null> {
    const row = this.#db()
      .stmt(`SELECT value FROM kv WHERE key = :key AND ${LIVE}`)
      .get({ key, now: Date.now() });
    return row ? str(row.value) : null;
  }

  async getMany(keys: string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    const rows = this.#db()
      .stmt(
        `SELECT key, value FROM kv WHERE key IN (SELECT value FROM json_each(:keys)) AND ${LIVE}`,
      )
      .all({ keys: JSON.stringify(keys), now: Date.now() });
    const found = new Map(rows.map((r) => [str(r.key), str(r.value)]));
    return keys.map((k) => found.get(k) ?? null);
  }

  async set(key: string, value: string, opts: SetOptions = {}): Promise<boolean> {
    const now = Date.now();
    const ttlMs = optionalMs(opts.ttlMs, "ttlMs");
    const expiresAt = ttlMs === undefined ? null : now + ttlMs;
    const db = this.#db();
    if (opts.ifNotExists) {
      // Inserts, or overwrites only a row that has already expired.
      const r = db
        .stmt(
          `INSERT INTO kv (key, value, expires_at) VALUES (:key, :value, :exp)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
           WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= :now`,
        )
        .run({ key, value, exp: expiresAt, now });
      return r.changes > 0;
    }
    db.stmt(
      `INSERT INTO kv (key, value, expires_at) VALUES (:key, :value, :exp)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
    ).run({ key, value, exp: expiresAt });
    return true;
  }

  async del(key: string): Promise<boolean> {
    const row = this.#db()
      .stmt("DELETE FROM kv WHERE key = :key RETURNING expires_at")
      .get({ key });
    return row !== undefined && isLive(numOrNull(row.expires_at), Date.now());
  }

  async incr(key: string, by = 1, opts: { ttlMs?: number } = {}): Promise<number> {
    const step = incrementOf(by);
    const ttlMs = optionalMs(opts.ttlMs, "ttlMs");
    const db = this.#db();
    // In the next group commit (`Db.grouped`): the relay counts every model call on several counters.
    return db.grouped(() => {
      const now = Date.now();
      const row = db
        .stmt(`SELECT value, expires_at FROM kv WHERE key = :key AND ${LIVE}`)
        .get({ key, now });
      if (!row) {
        db.stmt(
          `INSERT INTO kv (key, value, expires_at) VALUES (:key, :value, :exp)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
        ).run({ key, value: String(step), exp: ttlMs === undefined ? null : now + ttlMs });
        return step;
      }
      const current = str(row.value);
      const next = /^-?\d+$/.test(current) ? Number(current) + step : Number.NaN;
      if (!Number.isSafeInteger(next)) throw notIntegerError(key);
      // An existing key keeps its expiry: the TTL is applied on create only.
      db.stmt("UPDATE kv SET value = :value WHERE key = :key").run({ key, value: String(next) });
      return next;
    });
  }

  async compareAndSet(
    key: string,
    expected: string | null,
    value: string,
    opts: { ttlMs?: number } = {},
  ): Promise<boolean> {
    const ttlMs = optionalMs(opts.ttlMs, "ttlMs");
    const db = this.#db();
    // In the next group commit, like incr: a turn updates several records this way.
    return db.grouped(() => {
      const now = Date.now();
      const row = db.stmt(`SELECT value FROM kv WHERE key = :key AND ${LIVE}`).get({ key, now });
      const current = row ? str(row.value) : null;
      if (current !== expected) return false;
      db.stmt(
        `INSERT INTO kv (key, value, expires_at) VALUES (:key, :value, :exp)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
      ).run({ key, value, exp: ttlMs === undefined ? null : now + ttlMs });
      return true;
    });
  }

  update(
    key: string,
    fn: (current: string | null) => string | undefined,
    opts?: UpdateOptions,
  ): Promise<string | null> {
    return updateByCompareAndSet(this, key, fn, opts);
  }

  async take(key: string): Promise<string | null> {
    const row = this.#db()
      .stmt("DELETE FROM kv WHERE key = :key RETURNING value, expires_at")
      .get({ key });
    if (!row || !isLive(numOrNull(row.expires_at), Date.now())) return null;
    return str(row.value);
  }

  async list(
    prefix: string,
    opts: { limit?: number; after?: string } = {},
  ): Promise<{ key: string; value: string }[]> {
    const limit = limitOf(opts.limit) ?? -1;
    const params = { pattern: globPrefix(prefix), now: Date.now(), limit };
    const db = this.#db();
    const rows =
      opts.after === undefined
        ? db
            .stmt(
              `SELECT key, value FROM kv WHERE key GLOB :pattern AND ${LIVE} ORDER BY key LIMIT :limit`,
            )
            .all(params)
        : db
            .stmt(
              `SELECT key, value FROM kv WHERE key GLOB :pattern AND key > :after AND ${LIVE}
               ORDER BY key LIMIT :limit`,
            )
            .all({ ...params, after: opts.after });
    return rows.map((r) => ({ key: str(r.key), value: str(r.value) }));
  }

  async ttl(key: string): Promise<number | null> {
    const now = Date.now();
    const row = this.#db()
      .stmt(`SELECT expires_at FROM kv WHERE key = :key AND ${LIVE}`)
      .get({ key, now });
    if (!row) return null;
    const exp = numOrNull(row.expires_at);
    return exp === null ? -1 : Math.max(0, exp - now);
  }

  /** Delete expired rows; returns how many. */
  sweep(now: number): number {
    return Number(
      this.#db()
        .stmt("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= :now")
        .run({ now }).changes,
    );
  }
}

function isLive(expiresAt: number | null, now: number): boolean {
  return expiresAt === null || expiresAt > now;
}
