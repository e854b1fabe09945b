import { randomToken } from "@lobu/core";
import type { Redis } from "ioredis";
import type { Locks } from "../port.ts";
import { positiveMs } from "../shared.ts";
import { defineScripts, type Script } from "./connection.ts";

// A lock is `P l:<name>` = "<token> <owner>" with a PX TTL; tokens never contain spaces.
const SCRIPTS = {
  extend: {
    keys: 1,
    lua: `
      local v = redis.call('GET', KEYS[1])
      if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return 1
      end
      return 0`,
  },
  release: {
    keys: 1,
    lua: `
      local v = redis.call('GET', KEYS[1])
      if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
        redis.call('DEL', KEYS[1])
        return 1
      end
      return 0`,
  },
};

/** Named leases with fencing tokens. Not re-entrant: a held lock is held, whoever asks. */
export class RedisLocks implements Locks {
  #redis: Redis;
  #prefix: string;
  #scripts: Record<keyof typeof SCRIPTS, Script>;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = `${prefix}l:`;
    this.#scripts = defineScripts(redis, "locks", SCRIPTS);
  }

  async acquire(name: string, owner: string, ttlMs: number): Promise<string | null> {
    const ttl = positiveMs(ttlMs, "ttlMs");
    const token = randomToken(18);
    const ok = await this.#redis.set(this.#prefix + name, `${token} ${owner}`, "PX", ttl, "NX");
    return ok === "OK" ? token : null;
  }

  async extend(name: string, token: string, ttlMs: number): Promise<boolean> {
    const ttl = positiveMs(ttlMs, "ttlMs");
    return (await this.#scripts.extend(this.#prefix + name, token, ttl)) === 1;
  }

  async release(name: string, token: string): Promise<boolean> {
    return (await this.#scripts.release(this.#prefix + name, token)) === 1;
  }

  async holder(name: string): Promise<string | null> {
    const v = await this.#redis.get(this.#prefix + name);
    if (v === null) return null;
    const space = v.indexOf(" ");
    return space < 0 ? null : v.slice(space + 1);
  }
}
