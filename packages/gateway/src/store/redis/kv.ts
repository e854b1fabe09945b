/**
 * Key/value on Redis strings.
 *
 * Layout (P = store prefix):
 *   P k:<key>  the value (string), with PX TTL when one was asked for
 *   P kvi      ZSET of every key, all scored 0, so `list` is a ZRANGEBYLEX
 *              (byte order, like SQLite's BINARY collation) instead of a SCAN
 *              over the whole keyspace. Members whose key expired linger until
 *              `list` or the periodic `sweep` meets them.
 * Every write that can create or delete a key updates both in one Lua script.
 */
import type { Redis } from "ioredis";
import type { KeyValue, SetOptions, UpdateOptions } from "../port.ts";
import {
  incrementOf,
  limitOf,
  notIntegerError,
  optionalMs,
  updateByCompareAndSet,
} from "../shared.ts";
import { defineScripts, type Script } from "./connection.ts";

// KEYS[1] = value key, KEYS[2] = index; ARGV[1] = the caller's key (index member).

// Lua helper: write the value (with its TTL, '' = none) and index the key.
const PUT = `
local function put(value, ttl)
  if ttl ~= '' then redis.call('SET', KEYS[1], value, 'PX', ttl)
  else redis.call('SET', KEYS[1], value) end
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
end`;

const SCRIPTS = {
  set: {
    keys: 2,
    // ARGV: key, value, ttlMs ('' = none), ifNotExists ('1'/'0')
    lua: `${PUT}
      if ARGV[4] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
      put(ARGV[2], ARGV[3])
      return 1`,
  },
  del: {
    keys: 2,
    lua: `
      local n = redis.call('DEL', KEYS[1])
      redis.call('ZREM', KEYS[2], ARGV[1])
      return n`,
  },
  incr: {
    keys: 2,
    // ARGV: key, by, ttlMs ('' = none); the TTL applies only when the key is created.
    lua: `
      local existed = redis.call('EXISTS', KEYS[1])
      local v = redis.call('INCRBY', KEYS[1], ARGV[2])
      if existed == 0 then
        if ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
        redis.call('ZADD', KEYS[2], 0, ARGV[1])
      end
      return v`,
  },
  cas: {
    keys: 2,
    // ARGV: key, expected, expectAbsent ('1'/'0'), value, ttlMs ('' = none)
    lua: `${PUT}
      local cur = redis.call('GET', KEYS[1])
      if ARGV[3] == '1' then
        if cur then return 0 end
      elseif cur ~= ARGV[2] then return 0 end
      put(ARGV[4], ARGV[5])
      return 1`,
  },
  take: {
    keys: 2,
    lua: `
      local v = redis.call('GET', KEYS[1])
      if v then
        redis.call('DEL', KEYS[1])
        redis.call('ZREM', KEYS[2], ARGV[1])
      end
      return v`,
  },
  list: {
    keys: 1,
    // KEYS[1] = index; ARGV: value-key prefix, caller prefix, min bound, limit.
    // Returns [key, value, key, value, ...]; drops index members whose key is gone.
    lua: `
      local max = '+'
      if ARGV[2] ~= '' then max = '[' .. ARGV[2] .. '\\255' end
      local min, limit, out = ARGV[3], tonumber(ARGV[4]), {}
      while true do
        local keys = redis.call('ZRANGEBYLEX', KEYS[1], min, max, 'LIMIT', 0, limit)
        if #keys == 0 then return out end
        for _, k in ipairs(keys) do
          local v = redis.call('GET', ARGV[1] .. k)
          if v then
            out[#out + 1] = k
            out[#out + 1] = v
            if #out >= limit * 2 then return out end
          else
            redis.call('ZREM', KEYS[1], k)
          end
        end
        min = '(' .. keys[#keys]
      end`,
  },
  sweep: {
    keys: 1,
    // KEYS[1] = index; ARGV: value-key prefix, cursor, count. Returns the next cursor.
    lua: `
      local r = redis.call('ZSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
      local members = r[2]
      for i = 1, #members, 2 do
        if redis.call('EXISTS', ARGV[1] .. members[i]) == 0 then
          redis.call('ZREM', KEYS[1], members[i])
        end
      end
      return r[1]`,
  },
};

/** Page size for `list` without a limit, so no single script runs long. */
const LIST_PAGE = 500;

export class RedisKeyValue implements KeyValue {
  #redis: Redis;
  #valuePrefix: string;
  #index: string;
  #scripts: Record<keyof typeof SCRIPTS, Script>;
  #sweepCursor = "0";

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#valuePrefix = `${prefix}k:`;
    this.#index = `${prefix}kvi`;
    this.#scripts = defineScripts(redis, "kv", SCRIPTS);
  }

  async get(key: string): Promise<string | null> {
    return this.#redis.get(this.#k(key));
  }

  async getMany(keys: string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    return this.#redis.mget(keys.map((k) => this.#k(k)));
  }

  async set(key: string, value: string, opts: SetOptions = {}): Promise<boolean> {
    const ttl = optionalMs(opts.ttlMs, "ttlMs") ?? "";
    const r = await this.#scripts.set(
      this.#k(key),
      this.#index,
      key,
      value,
      ttl,
      opts.ifNotExists ? "1" : "0",
    );
    return r === 1;
  }

  async del(key: string): Promise<boolean> {
    return (await this.#scripts.del(this.#k(key), this.#index, key)) === 1;
  }

  async incr(key: string, by = 1, opts: { ttlMs?: number } = {}): Promise<number> {
    const step = incrementOf(by);
    const ttl = optionalMs(opts.ttlMs, "ttlMs") ?? "";
    try {
      return Number(await this.#scripts.incr(this.#k(key), this.#index, key, step, ttl));
    } catch (err) {
      if (err instanceof Error && /not an integer|out of range/.test(err.message)) {
        throw notIntegerError(key, err);
      }
      throw err;
    }
  }

  async compareAndSet(
    key: string,
    expected: string | null,
    value: string,
    opts: { ttlMs?: number } = {},
  ): Promise<boolean> {
    const ttl = optionalMs(opts.ttlMs, "ttlMs") ?? "";
    const r = await this.#scripts.cas(
      this.#k(key),
      this.#index,
      key,
      expected ?? "",
      expected === null ? "1" : "0",
      value,
      ttl,
    );
    return r === 1;
  }

  update(
    key: string,
    fn: (current: string | null) => string | undefined,
    opts?: UpdateOptions,
  ): Promise<string | null> {
    return updateByCompareAndSet(this, key, fn, opts);
  }

  async take(key: string): Promise<string | null> {
    const v = await this.#scripts.take(this.#k(key), this.#index, key);
    return typeof v === "string" ? v : null;
  }

  async list(
    prefix: string,
    opts: { limit?: number; after?: string } = {},
  ): Promise<{ key: string; value: string }[]> {
    const limit = limitOf(opts.limit);
    const out: { key: string; value: string }[] = [];
    let after = opts.after;
    for (;;) {
      const want = limit === undefined ? LIST_PAGE : Math.min(limit - out.length, LIST_PAGE);
      // Start at the prefix, or just past the cursor when it sorts after the prefix.
      const min =
        after !== undefined && Buffer.compare(Buffer.from(after), Buffer.from(prefix)) >= 0
          ? `(${after}`
          : `[${prefix}`;
      const flat = (await this.#scripts.list(
        this.#index,
        this.#valuePrefix,
        prefix,
        min,
        want,
      )) as string[];
      for (let i = 0; i + 1 < flat.length; i += 2) out.push({ key: flat[i]!, value: flat[i + 1]! });
      if (flat.length < want * 2 || (limit !== undefined && out.length >= limit)) return out;
      after = out[out.length - 1]!.key;
    }
  }

  async ttl(key: string): Promise<number | null> {
    const ms = await this.#redis.pttl(this.#k(key));
    return ms === -2 ? null : ms;
  }

  /** Drop index members of expired keys, a slice per call; returns when a pass completed. */
  async sweep(count = 1000): Promise<boolean> {
    this.#sweepCursor = String(
      await this.#scripts.sweep(this.#index, this.#valuePrefix, this.#sweepCursor, count),
    );
    return this.#sweepCursor === "0";
  }

  #k(key: string): string {
    return this.#valuePrefix + key;
  }
}
