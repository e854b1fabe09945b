/**
 * The durable partitioned queue on SQLite.
 *
 * `queue_messages` holds every message until it is acknowledged; `seq` is the
 * global enqueue order. `queue_partitions` has one row per non-empty partition
 * with its head (`head_seq`, deliverable from `ready_at`) and the lease on it.
 * A claim picks, in `head_seq` order, the first partition whose head is
 * deliverable and whose lease is absent or expired. An expired lease stays on
 * the row until someone else claims, so its holder may still ack or extend.
 */
import { randomToken } from "@lobu/core";
import type {
  ClaimOptions,
  EnqueueOptions,
  MessageQueue,
  QueueClaim,
  QueuedMessage,
} from "../port.ts";
import {
  AVAILABILITY_POLL_MS,
  AvailabilitySignal,
  delayMs,
  enqueueOptions,
  limitOf,
  positiveMs,
  Ticker,
} from "../shared.ts";
import { type Db, num, numOrNull, str } from "./db.ts";

const CLAIMABLE = "ready_at <= :now AND (lease_token IS NULL OR lease_expires <= :now)";
const NOT_SKIPPED = "name NOT IN (SELECT value FROM json_each(:skip))";
/** Not placed on another owner: its placement lock (locks.ts), when asked, is free or ours. */
const NOT_PLACED = `(:placement = '' OR NOT EXISTS (SELECT 1 FROM locks
  WHERE locks.name = :placement || queue_partitions.name AND locks.owner != :owner
    AND locks.expires_at > :now))`;
const MESSAGE_COLUMNS = "id, partition, payload, enqueued_at, attempts";

function toMessage(row: Record<string, unknown>): QueuedMessage {
  return {
    id: str(row.id),
    partition: str(row.partition),
    payload: str(row.payload),
    enqueuedAt: num(row.enqueued_at),
    attempts: num(row.attempts),
  };
}

interface PendingEnqueue {
  partition: string;
  payload: string;
  options: ReturnType<typeof enqueueOptions>;
}

interface EnqueueOutcome {
  id: string;
  duplicate: boolean;
  ready: boolean;
}

export class SqliteQueue implements MessageQueue {
  #db: () => Db;
  #signal: AvailabilitySignal;
  #ticker: Ticker;
  #lastCheck = 0;

  constructor(db: () => Db) {
    this.#db = db;
    this.#ticker = new Ticker(async () => this.#check(), AVAILABILITY_POLL_MS);
    this.#signal = new AvailabilitySignal({
      onFirst: () => {
        this.#lastCheck = Date.now();
        this.#ticker.start();
      },
      onLast: () => this.#ticker.stop(),
    });
  }

  /**
   * The enqueues of one event-loop turn are written in one transaction with one
   * fsync (`Db.grouped`), and each resolves only after that commit is durable (a
   * 202 is still sent only once its message is on disk). One fsync per accepted
   * message was the gateway's main cost under load.
   */
  async enqueue(
    partition: string,
    payload: string,
    opts: EnqueueOptions = {},
  ): Promise<{ id: string; duplicate: boolean }> {
    const item = { partition, payload, options: enqueueOptions(opts) };
    const db = this.#db();
    const outcome = await db.grouped(() => this.#insert(db, item), { durable: true });
    if (outcome.ready) this.#signal.fire();
    else if (!outcome.duplicate && item.options.delay > 0) this.#ticker.poke();
    return { id: outcome.id, duplicate: outcome.duplicate };
  }

  #insert(db: Db, item: PendingEnqueue): EnqueueOutcome {
    const { partition, payload } = item;
    const { id, delay, dedupeKey, dedupeTtl } = item.options;
    const now = Date.now();
    if (dedupeKey !== undefined) {
      const prev = db
        .stmt("SELECT message_id FROM queue_dedupe WHERE key = :key AND expires_at > :now")
        .get({ key: dedupeKey, now });
      if (prev) return { id: str(prev.message_id), duplicate: true, ready: false };
    }
    if (db.stmt("SELECT 1 FROM queue_messages WHERE id = :id").get({ id })) {
      return { id, duplicate: true, ready: false };
    }
    if (dedupeKey !== undefined) {
      db.stmt(
        `INSERT INTO queue_dedupe (key, message_id, expires_at) VALUES (:key, :id, :exp)
         ON CONFLICT (key) DO UPDATE SET message_id = excluded.message_id, expires_at = excluded.expires_at`,
      ).run({ key: dedupeKey, id, exp: now + dedupeTtl });
    }
    const notBefore = now + delay;
    const { lastInsertRowid } = db
      .stmt(
        `INSERT INTO queue_messages (id, partition, payload, enqueued_at, not_before)
         VALUES (:id, :partition, :payload, :now, :notBefore)`,
      )
      .run({ id, partition, payload, now, notBefore });
    // A new partition row means this message is the head; otherwise the head is unchanged.
    const created = db
      .stmt(
        `INSERT INTO queue_partitions (name, head_seq, ready_at) VALUES (:name, :seq, :notBefore)
         ON CONFLICT (name) DO NOTHING`,
      )
      .run({ name: partition, seq: lastInsertRowid, notBefore }).changes;
    return { id, duplicate: false, ready: created > 0 && delay === 0 };
  }

  async claim(owner: string, leaseMs: number, opts: ClaimOptions = {}): Promise<QueueClaim | null> {
    const lease = positiveMs(leaseMs, "leaseMs");
    const leaseToken = randomToken(18);
    const db = this.#db();
    const claim = db.tx(() => {
      const now = Date.now();
      const skip = JSON.stringify(opts.skip ?? []);
      const placed = { placement: opts.placement ?? "", owner };
      const head =
        opts.partition === undefined
          ? db
              .stmt(
                `SELECT name, head_seq FROM queue_partitions
                 WHERE ${CLAIMABLE} AND ${NOT_SKIPPED} AND ${NOT_PLACED}
                 ORDER BY head_seq LIMIT 1`,
              )
              .get({ now, skip, ...placed })
          : db
              .stmt(
                `SELECT name, head_seq FROM queue_partitions
                 WHERE name = :name AND ${CLAIMABLE} AND ${NOT_SKIPPED} AND ${NOT_PLACED}`,
              )
              .get({ name: opts.partition, now, skip, ...placed });
      if (!head) return null;
      const row = db
        .stmt(
          `UPDATE queue_messages SET attempts = attempts + 1 WHERE seq = :seq RETURNING ${MESSAGE_COLUMNS}`,
        )
        .get({ seq: num(head.head_seq) });
      if (!row) throw new Error(`queue partition ${str(head.name)} points at a missing head`);
      db.stmt(
        `UPDATE queue_partitions SET lease_token = :token, lease_owner = :owner, lease_expires = :exp
         WHERE name = :name`,
      ).run({ token: leaseToken, owner, exp: now + lease, name: str(head.name) });
      return { ...toMessage(row), leaseToken, owner };
    });
    if (claim) this.#ticker.poke();
    return claim;
  }

  async extend(claim: QueueClaim, leaseMs: number): Promise<boolean> {
    const lease = positiveMs(leaseMs, "leaseMs");
    const ok =
      this.#db()
        .stmt(
          `UPDATE queue_partitions SET lease_expires = :exp
           WHERE name = :name AND lease_token = :token`,
        )
        .run({ exp: Date.now() + lease, name: claim.partition, token: claim.leaseToken }).changes >
      0;
    if (ok) this.#ticker.poke();
    return ok;
  }

  async ack(claim: QueueClaim): Promise<boolean> {
    const db = this.#db();
    // In the next group commit (with the turn's last records), not a commit of its own.
    const result = await db.grouped(() => {
      if (!this.#holds(db, claim)) return { ok: false, ready: false };
      db.stmt("DELETE FROM queue_messages WHERE id = :id").run({ id: claim.id });
      return { ok: true, ready: this.#reschedule(db, claim.partition, Date.now()) };
    });
    if (result.ready) this.#signal.fire();
    return result.ok;
  }

  async release(claim: QueueClaim, opts: { delayMs?: number } = {}): Promise<boolean> {
    const delay = delayMs(opts.delayMs);
    const db = this.#db();
    const result = await db.grouped(() => {
      if (!this.#holds(db, claim)) return { ok: false, ready: false };
      const now = Date.now();
      if (delay > 0) {
        db.stmt("UPDATE queue_messages SET not_before = :nb WHERE id = :id").run({
          nb: now + delay,
          id: claim.id,
        });
      }
      return { ok: true, ready: this.#reschedule(db, claim.partition, now) };
    });
    if (result.ready) this.#signal.fire();
    else if (result.ok) this.#ticker.poke();
    return result.ok;
  }

  async pending(partition?: string, opts: { limit?: number } = {}): Promise<QueuedMessage[]> {
    const limit = limitOf(opts.limit) ?? -1;
    const db = this.#db();
    const rows =
      partition === undefined
        ? db
            .stmt(`SELECT ${MESSAGE_COLUMNS} FROM queue_messages ORDER BY seq LIMIT :limit`)
            .all({ limit })
        : db
            .stmt(
              `SELECT ${MESSAGE_COLUMNS} FROM queue_messages WHERE partition = :partition
               ORDER BY seq LIMIT :limit`,
            )
            .all({ partition, limit });
    return rows.map(toMessage);
  }

  async get(id: string): Promise<QueuedMessage | null> {
    const row = this.#db()
      .stmt(`SELECT ${MESSAGE_COLUMNS} FROM queue_messages WHERE id = :id`)
      .get({ id });
    return row ? toMessage(row) : null;
  }

  async depth(): Promise<number> {
    const row = this.#db().stmt("SELECT COUNT(*) AS n FROM queue_messages").get();
    return num(row?.n ?? 0);
  }

  async releaseAllLeases(exceptOwners: string[] = []): Promise<number> {
    const db = this.#db();
    const result = db.tx(() => {
      const now = Date.now();
      const rows = db
        .stmt(
          `SELECT name FROM queue_partitions WHERE lease_token IS NOT NULL
           AND lease_owner NOT IN (SELECT value FROM json_each(:keep))`,
        )
        .all({ keep: JSON.stringify(exceptOwners) });
      let ready = false;
      for (const row of rows) ready = this.#reschedule(db, str(row.name), now) || ready;
      return { count: rows.length, ready };
    });
    if (result.ready) this.#signal.fire();
    return result.count;
  }

  onAvailable(listener: () => void): () => void {
    return this.#signal.add(listener);
  }

  /** Stop the availability timer and forget listeners (store close). */
  close(): void {
    this.#signal.clear();
    this.#ticker.stop();
  }

  /** Delete expired dedupe keys; returns how many. */
  sweep(now: number): number {
    return Number(
      this.#db().stmt("DELETE FROM queue_dedupe WHERE expires_at <= :now").run({ now }).changes,
    );
  }

  #holds(db: Db, claim: QueueClaim): boolean {
    return (
      db
        .stmt("SELECT 1 FROM queue_partitions WHERE name = :name AND lease_token = :token")
        .get({ name: claim.partition, token: claim.leaseToken }) !== undefined
    );
  }

  /**
   * Point the partition at its current head and drop its lease (or delete the
   * row when empty). Returns whether the partition is deliverable right now.
   */
  #reschedule(db: Db, partition: string, now: number): boolean {
    const head = db
      .stmt(
        "SELECT seq, not_before FROM queue_messages WHERE partition = :partition ORDER BY seq LIMIT 1",
      )
      .get({ partition });
    if (!head) {
      db.stmt("DELETE FROM queue_partitions WHERE name = :name").run({ name: partition });
      return false;
    }
    db.stmt(
      `UPDATE queue_partitions SET head_seq = :seq, ready_at = :nb,
         lease_token = NULL, lease_owner = NULL, lease_expires = NULL
       WHERE name = :name`,
    ).run({ seq: num(head.seq), nb: num(head.not_before), name: partition });
    return num(head.not_before) <= now;
  }

  /**
   * Ticker body: signal when a delay or a lease ran out since the last check,
   * and say when the next one will.
   */
  async #check(): Promise<number | undefined> {
    const db = this.#db();
    const now = Date.now();
    const since = this.#lastCheck;
    this.#lastCheck = now;
    const due = db
      .stmt(
        `SELECT 1 FROM queue_partitions WHERE
           (lease_token IS NULL AND ready_at > :since AND ready_at <= :now)
           OR (lease_token IS NOT NULL AND lease_expires > :since AND lease_expires <= :now)
         LIMIT 1`,
      )
      .get({ since, now });
    if (due) this.#signal.fire();
    const next = db
      .stmt(
        `SELECT MIN(t) AS t FROM (
           SELECT MIN(ready_at) AS t FROM queue_partitions WHERE lease_token IS NULL AND ready_at > :now
           UNION ALL
           SELECT MIN(lease_expires) FROM queue_partitions
             WHERE lease_token IS NOT NULL AND lease_expires > :now)`,
      )
      .get({ now });
    const t = numOrNull(next?.t);
    return t === null ? undefined : t - now;
  }
}
