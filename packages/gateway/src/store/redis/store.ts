import { LobuError } from "@lobu/core";
import type { Redis } from "ioredis";
import type { Store, StoreIssue } from "../port.ts";
import { ReadCachingKv } from "../read-cache.ts";
import { log } from "../shared.ts";
import { connectRedis, quit, redactUrl } from "./connection.ts";
import { diagnoseRedis } from "./diagnose.ts";
import { RedisKeyValue } from "./kv.ts";
import { RedisLocks } from "./locks.ts";
import { RedisPubSub } from "./pubsub.ts";
import { RedisQueue } from "./queue.ts";
import { RedisStreams } from "./streams.ts";

/** How often a slice of the kv index is checked for keys that expired. */
const SWEEP_INTERVAL_MS = 60_000;

/** Servers whose setup warnings were logged already: once per process is enough. */
const warnedAbout = new Set<string>();

export interface RedisStoreOptions {
  url: string;
  /** Every key and channel starts with this (default `lobu:`). */
  prefix?: string;
}

/**
 * The shared store for several gateways. Connections: one shared for commands
 * (auto-pipelined) and one subscriber; blocked stream reads wait on the subscriber
 * (streams.ts), not on connections of their own.
 */
export class RedisStore implements Store {
  readonly kind = "redis" as const;
  /** Reads of watched keys are cached (read-cache.ts); `rawKv` is the adapter itself. */
  readonly kv: ReadCachingKv;
  readonly rawKv: RedisKeyValue;
  readonly queue: RedisQueue;
  readonly streams: RedisStreams;
  readonly locks: RedisLocks;
  readonly pubsub: RedisPubSub;
  readonly prefix: string;
  #redis: Redis;
  #subscriber: Redis;
  #sweeper: NodeJS.Timeout;
  #closed = false;

  /**
   * Connect, refusing a server the store cannot work on (see `diagnose`);
   * warnings about it are logged.
   */
  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    // Commands issued in the same tick leave in one write: under load most of the
    // gateway's time on Redis was one socket write per command. Blocking reads
    // have connections of their own (streams.ts), and MULTI/pipelines are sent as
    // they are, so nothing waits behind a slow command here.
    const redis = await connectRedis(opts.url, "store", { enableAutoPipelining: true });
    let subscriber: Redis;
    try {
      await checkSetup(redis, opts.url);
      subscriber = await connectRedis(opts.url, "subscriber");
    } catch (err) {
      redis.disconnect();
      throw err;
    }
    return new RedisStore(redis, subscriber, opts.prefix ?? "lobu:");
  }

  private constructor(redis: Redis, subscriber: Redis, prefix: string) {
    this.#redis = redis;
    this.#subscriber = subscriber;
    this.prefix = prefix;
    this.rawKv = new RedisKeyValue(redis, prefix);
    this.kv = new ReadCachingKv(this.rawKv, { shared: true });
    this.pubsub = new RedisPubSub(redis, subscriber, prefix);
    this.queue = new RedisQueue(redis, prefix, this.pubsub);
    this.streams = new RedisStreams(redis, prefix, this.pubsub, subscriber);
    this.locks = new RedisLocks(redis, prefix);
    this.#sweeper = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  /**
   * Version, Cluster mode and role (`fail`), eviction policy and AOF (`warn`),
   * read from the server's INFO.
   */
  diagnose(): Promise<StoreIssue[]> {
    return diagnoseRedis(this.#redis);
  }

  /** Drop index entries of expired kv keys (one slice); Redis expires the keys themselves. */
  async sweep(): Promise<void> {
    try {
      await this.rawKv.sweep();
    } catch (err) {
      log.warn({ err }, "redis store sweep failed");
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    await this.queue.close();
    this.streams.close();
    this.pubsub.close();
    await Promise.all([quit(this.#subscriber), quit(this.#redis)]);
  }
}

async function checkSetup(redis: Redis, url: string): Promise<void> {
  const issues = await diagnoseRedis(redis);
  const fatal = issues.find((i) => i.level === "fail");
  if (fatal) {
    throw new LobuError(
      "store_unsupported",
      `cannot use Redis at ${redactUrl(url)}: ${fatal.problem}`,
      {
        status: 503,
        hint: fatal.fix,
        details: { problems: issues.map((i) => i.problem) },
      },
    );
  }
  const where = redactUrl(url);
  if (issues.length === 0 || warnedAbout.has(where)) return;
  warnedAbout.add(where);
  for (const issue of issues) log.warn({ redis: where, fix: issue.fix }, issue.problem);
}
