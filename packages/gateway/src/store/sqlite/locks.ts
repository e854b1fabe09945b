import { randomToken } from "@lobu/core";
import type { Locks } from "../port.ts";
import { positiveMs } from "../shared.ts";
import { type Db, str } from "./db.ts";

/** Named leases with fencing tokens. Not re-entrant: a held lock is held, whoever asks. */
export class SqliteLocks implements Locks {
  #db: () => Db;

  constructor(db: () => Db) {
    this.#db = db;
  }

  async acquire(name: string, owner: string, ttlMs: number): Promise<string | null> {
    const ttl = positiveMs(ttlMs, "ttlMs");
    const token = randomToken(18);
    const now = Date.now();
    // Takes the row when free or when the previous holder's lease ran out.
    const r = this.#db()
      .stmt(
        `INSERT INTO locks (name, token, owner, expires_at) VALUES (:name, :token, :owner, :exp)
         ON CONFLICT (name) DO UPDATE SET token = excluded.token, owner = excluded.owner,
           expires_at = excluded.expires_at
         WHERE locks.expires_at <= :now`,
      )
      .run({ name, token, owner, exp: now + ttl, now });
    return r.changes > 0 ? token : null;
  }

  async extend(name: string, token: string, ttlMs: number): Promise<boolean> {
    const ttl = positiveMs(ttlMs, "ttlMs");
    const now = Date.now();
    const r = this.#db()
      .stmt(
        `UPDATE locks SET expires_at = :exp
         WHERE name = :name AND token = :token AND expires_at > :now`,
      )
      .run({ name, token, exp: now + ttl, now });
    return r.changes > 0;
  }

  async release(name: string, token: string): Promise<boolean> {
    const r = this.#db()
      .stmt("DELETE FROM locks WHERE name = :name AND token = :token AND expires_at > :now")
      .run({ name, token, now: Date.now() });
    return r.changes > 0;
  }

  async holder(name: string): Promise<string | null> {
    const row = this.#db()
      .stmt("SELECT owner FROM locks WHERE name = :name AND expires_at > :now")
      .get({ name, now: Date.now() });
    return row ? str(row.owner) : null;
  }

  /** Delete expired locks; returns how many. */
  sweep(now: number): number {
    return Number(
      this.#db().stmt("DELETE FROM locks WHERE expires_at <= :now").run({ now }).changes,
    );
  }
}
