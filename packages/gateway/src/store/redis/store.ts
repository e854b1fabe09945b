import type { Redis } from "ioredis";
import type { Store } from "../port.ts";
import { log } from "../shared.ts";
import { connectRedis, quit } from "./connection.ts";
import { RedisKeyValue } from "./kv.ts";
import { RedisLocks } from "./locks.ts";
import { RedisPubSub } from "./pubsub.ts";
import { RedisQueue } from "./queue.ts";
import { RedisStreams } from "./streams.ts";

/** How often a slice of the kv index is checked for keys that expired. */
const SWEEP_INTERVAL_MS = 60_000;

export interface RedisStoreOptions {
  url: string;
  /** Every key and channel starts with this (default `lobu:`). */
  prefix?: string;
}

/**
 * The shared store for several gateways. Connections: one shared for commands,
 * one subscriber, and a small pool for blocking stream reads.
 */
export class RedisStore implements Store {
  readonly kind = "redis" as const;
  readonly kv: RedisKeyValue;
  readonly queue: RedisQueue;
  readonly streams: RedisStreams;
  readonly locks: RedisLocks;
  readonly pubsub: RedisPubSub;
  readonly prefix: string;
  #redis: Redis;
  #subscriber: Redis;
  #sweeper: NodeJS.Timeout;
  #closed = false;

  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    const redis = await connectRedis(opts.url, "store");
    let subscriber: Redis;
    try {
      subscriber = await connectRedis(opts.url, "subscriber");
    } catch (err) {
      redis.disconnect();
      throw err;
    }
    return new RedisStore(redis, subscriber, opts.url, opts.prefix ?? "lobu:");
  }

  private constructor(redis: Redis, subscriber: Redis, url: string, prefix: string) {
    this.#redis = redis;
    this.#subscriber = subscriber;
    this.prefix = prefix;
    this.kv = new RedisKeyValue(redis, prefix);
    this.pubsub = new RedisPubSub(redis, subscriber, prefix);
    this.queue = new RedisQueue(redis, prefix, this.pubsub);
    this.streams = new RedisStreams(redis, prefix, url);
    this.locks = new RedisLocks(redis, prefix);
    this.#sweeper = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  /** Drop index entries of expired kv keys (one slice); Redis expires the keys themselves. */
  async sweep(): Promise<void> {
    try {
      await this.kv.sweep();
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
