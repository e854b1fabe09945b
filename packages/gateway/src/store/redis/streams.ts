/**
 * Streams on Redis Streams: `P s:<stream>`, one field `d` per entry, ids made
 * by Redis (`<ms>-<seq>`).
 *
 * Blocking reads hold no connection: every append also publishes the stream's
 * key on one channel (in the same script, so the entry is there before anyone
 * hears of it), each gateway listens on its subscriber connection, and a
 * blocked reader reads its range again when its stream is named. An XREAD BLOCK
 * per reader needed a connection of its own per client following a turn (a
 * thousand at once on a busy gateway, each a write and a wake-up per read),
 * while these ranges share the store's auto-pipelined connection.
 */
import type { Redis } from "ioredis";
import type { EventStreams, StreamEntry } from "../port.ts";
import {
  blockMsOf,
  closedError,
  formatStreamId,
  limitOf,
  optionalMs,
  parseStreamId,
} from "../shared.ts";
import { defineScripts, type Script } from "./connection.ts";
import type { RedisPubSub } from "./pubsub.ts";

const SCRIPTS = {
  /**
   * XADD (exact MAXLEN, so both stores keep exactly the newest maxLen entries),
   * its TTL and the notice to blocked readers, atomically. A script, not MULTI:
   * it joins the connection's auto-pipeline instead of a write of its own (a
   * turn appends a dozen events). ARGV: data, maxLen or "", ttlMs or "", channel.
   */
  append: {
    keys: 1,
    lua: `
      local id
      if ARGV[2] == '' then
        id = redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])
      else
        id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'd', ARGV[1])
      end
      if ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
      redis.call('PUBLISH', ARGV[4], KEYS[1])
      return id`,
  },
};

/** Waiting readers hear of appends on this channel (the stream's full key as message). */
const APPENDED = "s-appended";

interface Waiter {
  /** Set when the stream was appended to since the reader last looked. */
  appended: boolean;
  wake: () => void;
}

type RawEntry = [string, string[]];

function toEntries(raw: unknown): StreamEntry[] {
  if (!Array.isArray(raw)) return [];
  return (raw as RawEntry[]).map(([id, fields]) => {
    const at = fields.indexOf("d");
    return { id, data: at >= 0 && at % 2 === 0 ? (fields[at + 1] ?? "") : "" };
  });
}

function cursor(id: string): string {
  return formatStreamId(parseStreamId(id));
}

export class RedisStreams implements EventStreams {
  #redis: Redis;
  #prefix: string;
  #pubsub: RedisPubSub;
  #channel: string;
  /** Blocked readers by stream key. */
  #waiters = new Map<string, Set<Waiter>>();
  /** The subscription to APPENDED, made on the first blocking read. */
  #listening: Promise<unknown> | undefined;
  #closed = false;
  #scripts: Record<keyof typeof SCRIPTS, Script>;

  constructor(redis: Redis, prefix: string, pubsub: RedisPubSub, subscriber: Redis) {
    this.#redis = redis;
    this.#scripts = defineScripts(redis, "streams", SCRIPTS);
    this.#prefix = `${prefix}s:`;
    this.#pubsub = pubsub;
    this.#channel = `${prefix}${APPENDED}`;
    // Appends published while the subscriber was reconnecting were not heard: look again.
    subscriber.on("ready", () => {
      for (const set of this.#waiters.values()) for (const w of set) this.#notify(w);
    });
  }

  async append(
    stream: string,
    data: string,
    opts: { maxLen?: number; ttlMs?: number } = {},
  ): Promise<string> {
    const maxLen = limitOf(opts.maxLen, "maxLen");
    const ttlMs = optionalMs(opts.ttlMs, "ttlMs");
    const key = this.#prefix + stream;
    const id = await this.#scripts.append(key, data, maxLen ?? "", ttlMs ?? "", this.#channel);
    // Readers here need not wait for the message to come back.
    this.#appended(key);
    return String(id);
  }

  #appended(key: string): void {
    const set = this.#waiters.get(key);
    if (set) for (const w of set) this.#notify(w);
  }

  #notify(w: Waiter): void {
    w.appended = true;
    w.wake();
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
    if (this.#closed) throw closedError("redis");
    try {
      return await this.#blockingRead(stream, from, limit, block, signal);
    } catch (err) {
      // Closing the store ends reads quietly, one still starting included.
      if (this.#closed) return [];
      throw err;
    }
  }

  async #blockingRead(
    stream: string,
    from: string,
    limit: number | undefined,
    block: number,
    signal: AbortSignal | undefined,
  ): Promise<StreamEntry[]> {
    this.#listening ??= this.#pubsub
      .subscribeRaw(this.#channel, (key) => this.#appended(key))
      .catch((err: unknown) => {
        this.#listening = undefined;
        throw err;
      });
    await this.#listening;
    const key = this.#prefix + stream;
    const waiter: Waiter = { appended: false, wake: () => {} };
    // Registered before the first range: an append after it is heard, whichever
    // of the range's reply and the published message comes back first.
    let set = this.#waiters.get(key);
    if (!set) {
      set = new Set();
      this.#waiters.set(key, set);
    }
    set.add(waiter);
    const deadline = Date.now() + block;
    try {
      for (;;) {
        waiter.appended = false;
        const entries = await this.range(stream, { after: from, limit });
        if (entries.length || this.#closed || signal?.aborted) return entries;
        if (!waiter.appended) {
          const left = deadline - Date.now();
          if (left <= 0) return [];
          await new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              signal?.removeEventListener("abort", done);
              resolve();
            };
            const timer = setTimeout(done, left);
            waiter.wake = done;
            signal?.addEventListener("abort", done, { once: true });
          });
          waiter.wake = () => {};
          if (this.#closed || signal?.aborted) return [];
          // Timed out: one last look (an append whose message was lost is still found).
          if (!waiter.appended) return this.range(stream, { after: from, limit });
        }
      }
    } finally {
      set.delete(waiter);
      if (set.size === 0 && this.#waiters.get(key) === set) this.#waiters.delete(key);
    }
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

  /** End blocked reads: they return []. */
  close(): void {
    this.#closed = true;
    for (const set of this.#waiters.values()) for (const w of set) w.wake();
  }
}
