/**
 * Streams on Redis Streams: `P s:<stream>`, one field `d` per entry, ids made
 * by Redis (`<ms>-<seq>`). Blocking reads run XREAD BLOCK on connections from a
 * small pool, never on the shared connection; an abort unblocks the reader with
 * CLIENT UNBLOCK (or drops that connection when the unblock missed).
 */
import type { Redis } from "ioredis";
import type { EventStreams, StreamEntry } from "../port.ts";
import {
  blockMsOf,
  closedError,
  formatStreamId,
  limitOf,
  log,
  optionalMs,
  parseStreamId,
} from "../shared.ts";
import { connectRedis } from "./connection.ts";

/** Idle blocking connections kept for reuse; busier moments open more. */
const MAX_IDLE_READERS = 4;

type RawEntry = [string, string[]];

function toEntries(raw: unknown): StreamEntry[] {
  if (!Array.isArray(raw)) return [];
  return (raw as RawEntry[]).map(([id, fields]) => {
    const at = fields.indexOf("d");
    return { id, data: at >= 0 && at % 2 === 0 ? (fields[at + 1] ?? "") : "" };
  });
}

/** XREAD replies `[[key, entries]]` (RESP2 shape) or `[key, entries]` (flattened map). */
function xreadEntries(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  const first = reply[0] as unknown;
  return toEntries(typeof first === "string" ? reply[1] : (first as unknown[])[1]);
}

function cursor(id: string): string {
  return formatStreamId(parseStreamId(id));
}

/** Connections dedicated to XREAD BLOCK, with their server-side client ids. */
class ReaderPool {
  #url: string;
  #idle: Redis[] = [];
  #all = new Set<Redis>();
  #clientIds = new WeakMap<Redis, number>();
  #closed = false;

  constructor(url: string) {
    this.#url = url;
  }

  async acquire(): Promise<Redis> {
    if (this.#closed) throw closedError("redis");
    const idle = this.#idle.pop();
    if (idle) return idle;
    const conn = await connectRedis(this.#url, "stream-reader");
    this.#all.add(conn);
    if (this.#closed) {
      this.discard(conn);
      throw closedError("redis");
    }
    const learnId = () =>
      conn.call("CLIENT", "ID").then(
        (id) => this.#clientIds.set(conn, Number(id)),
        () => this.#clientIds.delete(conn),
      );
    await learnId();
    // A reconnect gets a new id; until it is known, aborts fall back to dropping the connection.
    conn.on("reconnecting", () => this.#clientIds.delete(conn));
    conn.on("ready", () => void learnId());
    return conn;
  }

  clientId(conn: Redis): number | undefined {
    return this.#clientIds.get(conn);
  }

  release(conn: Redis): void {
    if (this.#closed || conn.status !== "ready" || this.#idle.length >= MAX_IDLE_READERS) {
      this.discard(conn);
    } else {
      this.#idle.push(conn);
    }
  }

  discard(conn: Redis): void {
    if (!this.#all.delete(conn)) return;
    this.#idle = this.#idle.filter((c) => c !== conn);
    conn.disconnect();
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#closed = true;
    for (const conn of [...this.#all]) this.discard(conn);
  }
}

export class RedisStreams implements EventStreams {
  #redis: Redis;
  #prefix: string;
  #readers: ReaderPool;

  constructor(redis: Redis, prefix: string, url: string) {
    this.#redis = redis;
    this.#prefix = `${prefix}s:`;
    this.#readers = new ReaderPool(url);
  }

  async append(
    stream: string,
    data: string,
    opts: { maxLen?: number; ttlMs?: number } = {},
  ): Promise<string> {
    const maxLen = limitOf(opts.maxLen, "maxLen");
    const ttlMs = optionalMs(opts.ttlMs, "ttlMs");
    const key = this.#prefix + stream;
    const tx = this.#redis.multi();
    // Exact MAXLEN (not `~`) so both stores keep exactly the newest maxLen entries.
    if (maxLen === undefined) tx.xadd(key, "*", "d", data);
    else tx.xadd(key, "MAXLEN", maxLen, "*", "d", data);
    if (ttlMs !== undefined) tx.pexpire(key, ttlMs);
    const replies = (await tx.exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    return String(replies[0]?.[1]);
  }

  async range(
    stream: string,
    opts: { after?: string; limit?: number } = {},
  ): Promise<StreamEntry[]> {
    const start = opts.after === undefined ? "-" : `(${cursor(opts.after)}`;
    const limit = limitOf(opts.limit);
    const key = this.#prefix + stream;
    const raw =
      limit === undefined
        ? await this.#redis.xrange(key, start, "+")
        : await this.#redis.xrange(key, start, "+", "COUNT", limit);
    return toEntries(raw);
  }

  async revRange(
    stream: string,
    opts: { before?: string; limit?: number } = {},
  ): Promise<StreamEntry[]> {
    const end = opts.before === undefined ? "+" : `(${cursor(opts.before)}`;
    const limit = limitOf(opts.limit);
    const key = this.#prefix + stream;
    const raw =
      limit === undefined
        ? await this.#redis.xrevrange(key, end, "-")
        : await this.#redis.xrevrange(key, end, "-", "COUNT", limit);
    return toEntries(raw);
  }

  async read(
    stream: string,
    after: string | undefined,
    opts: { blockMs: number; limit?: number; signal?: AbortSignal },
  ): Promise<StreamEntry[]> {
    const from = after === undefined ? "0-0" : cursor(after);
    const limit = limitOf(opts.limit);
    const block = blockMsOf(opts.blockMs);
    const { signal } = opts;
    if (block === 0 || signal?.aborted) return this.range(stream, { after: from, limit });
    const key = this.#prefix + stream;
    if (this.#readers.closed) throw closedError("redis");
    let conn: Redis;
    try {
      conn = await this.#readers.acquire();
    } catch (err) {
      // Closed while the reader connected: end like any other blocked read.
      if (this.#readers.closed) return [];
      throw err;
    }
    if (signal?.aborted) {
      this.#readers.release(conn);
      return [];
    }
    // XREAD from a cursor returns at once when entries exist, else blocks: no gap to race.
    const pending =
      limit === undefined
        ? conn.xread("BLOCK", block, "STREAMS", key, from)
        : conn.xread("COUNT", limit, "BLOCK", block, "STREAMS", key, from);
    return new Promise<StreamEntry[]>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const onAbort = () => {
        settle(() => resolve([]));
        void this.#unblock(conn);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      pending.then(
        (reply) => {
          this.#readers.release(conn);
          settle(() => resolve(xreadEntries(reply)));
        },
        (err: unknown) => {
          this.#readers.discard(conn);
          // Closing the store (or an abort that dropped the connection) ends reads quietly.
          if (this.#readers.closed) settle(() => resolve([]));
          else settle(() => reject(err));
        },
      );
    });
  }

  async length(stream: string): Promise<number> {
    return this.#redis.xlen(this.#prefix + stream);
  }

  async remove(stream: string, ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.#redis.xdel(this.#prefix + stream, ...ids.map(cursor));
  }

  async delete(stream: string): Promise<void> {
    await this.#redis.del(this.#prefix + stream);
  }

  /** End blocked reads (they return []) and close the reader connections. */
  close(): void {
    this.#readers.close();
  }

  async #unblock(conn: Redis): Promise<void> {
    const id = this.#readers.clientId(conn);
    try {
      if (id !== undefined && (await this.#redis.call("CLIENT", "UNBLOCK", id)) === 1) return;
    } catch (err) {
      log.debug({ err }, "CLIENT UNBLOCK failed");
    }
    // Not blocked yet (or id unknown): dropping the connection ends the XREAD for sure.
    this.#readers.discard(conn);
  }
}
