/**
 * The durable partitioned queue on Redis. Every state change is one Lua script,
 * so it is atomic across any number of gateways; times come from the Redis
 * server clock (`TIME`), so gateway clock skew cannot reorder or expire anything.
 *
 * Layout (P = store prefix):
 *   P q:m:<id>        HASH   one message: p (partition), d (payload), t (enqueued
 *                            at, ms), a (attempts), s (seq), nb (not before, ms)
 *   P q:p:<partition> LIST   ids of the partition in FIFO order; the head (index 0)
 *                            is the only deliverable one and stays there while leased
 *   P q:seq           STRING global enqueue counter (the `s` of each message)
 *   P q:ids           ZSET   every message id scored by seq: depth and `pending()`
 *   P q:ready         ZSET   unleased partitions whose head is deliverable now,
 *                            scored by the head's seq, so the lowest score is the
 *                            partition with the oldest head (fairness)
 *   P q:delayed       ZSET   unleased partitions whose head is not deliverable yet,
 *                            scored by its not-before time
 *   P q:leases        ZSET   leased partitions scored by lease expiry
 *   P q:lease         HASH   partition -> JSON [token, owner, id] of its lease
 *   P q:dedupe:<key>  STRING id of the message enqueued with that dedupe key (PX TTL)
 *   P q:available     pub/sub channel, message = id of the gateway that signalled
 *
 * A partition is in exactly one of ready / delayed / leases, or in none when
 * empty. Claim first moves due partitions from delayed and leases into ready
 * (bounded batch), then takes the lowest-scored ready partition not skipped:
 * O(log n + |skip|). An expired lease stays in `q:lease` until someone else
 * claims, so its holder can still ack or extend it until then.
 *
 * Scripts build key names from P, so this needs a single Redis (not Cluster),
 * version >= 6.2, with `maxmemory-policy noeviction` (an evicted message is
 * lost; claim only skips over the dangling id).
 */
import { randomToken } from "@lobu/core";
import type { Redis } from "ioredis";
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
  log,
  positiveMs,
  Ticker,
} from "../shared.ts";
import { defineScripts, type Script } from "./connection.ts";
import type { RedisPubSub } from "./pubsub.ts";

// Shared by every script: ARGV[1] = prefix, ARGV[2] = id of the calling gateway.
const PRELUDE = `
local P = ARGV[1]
local READY, DELAYED, LEASES, LEASE = P .. 'q:ready', P .. 'q:delayed', P .. 'q:leases', P .. 'q:lease'
local IDS, SEQ, AVAILABLE = P .. 'q:ids', P .. 'q:seq', P .. 'q:available'
local function msg_key(id) return P .. 'q:m:' .. id end
local function list_key(p) return P .. 'q:p:' .. p end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function signal() redis.call('PUBLISH', AVAILABLE, ARGV[2]) end

-- File an unleased partition by its head: ready (score = seq) when deliverable,
-- delayed (score = not-before) when not yet, nowhere when empty. 1 = deliverable.
local function place(p, now)
  local head = redis.call('LINDEX', list_key(p), 0)
  if not head then
    redis.call('ZREM', READY, p)
    redis.call('ZREM', DELAYED, p)
    return 0
  end
  local f = redis.call('HMGET', msg_key(head), 's', 'nb')
  local nb = tonumber(f[2]) or 0
  if nb > now then
    redis.call('ZREM', READY, p)
    redis.call('ZADD', DELAYED, nb, p)
    return 0
  end
  redis.call('ZREM', DELAYED, p)
  redis.call('ZADD', READY, f[1] or 0, p)
  return 1
end

-- Move partitions whose delay or lease ran out into ready; returns how many.
local function promote(now)
  local moved = 0
  for _, p in ipairs(redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now, 'LIMIT', 0, 100)) do
    moved = moved + place(p, now)
  end
  for _, p in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, 100)) do
    redis.call('ZREM', LEASES, p)
    moved = moved + place(p, now)
  end
  return moved
end

-- The lease record {token, owner, id} of p when \`token\` holds it and it is on \`id\`.
local function held(p, id, token)
  local v = redis.call('HGET', LEASE, p)
  if not v then return nil end
  local l = cjson.decode(v)
  if l[1] ~= token or l[3] ~= id then return nil end
  return l
end
`;

const SCRIPTS = {
  // ARGV[3..]: partition, payload, id, hasDedupe, dedupeKey, dedupeTtlMs, delayMs
  // Returns {id, duplicate, deliverableNow}.
  enqueue: `
    local p, payload, id = ARGV[3], ARGV[4], ARGV[5]
    local dk = nil
    if ARGV[6] == '1' then
      dk = P .. 'q:dedupe:' .. ARGV[7]
      local prev = redis.call('GET', dk)
      if prev then return {prev, 1, 0} end
    end
    if redis.call('EXISTS', msg_key(id)) == 1 then return {id, 1, 0} end
    if dk then redis.call('SET', dk, id, 'PX', ARGV[8]) end
    local now = now_ms()
    local seq = redis.call('INCR', SEQ)
    redis.call('HSET', msg_key(id), 'p', p, 'd', payload, 't', now, 'a', 0, 's', seq,
      'nb', now + tonumber(ARGV[9]))
    redis.call('ZADD', IDS, seq, id)
    -- Only a new head changes where the partition is filed.
    if redis.call('RPUSH', list_key(p), id) == 1 and place(p, now) == 1 then
      signal()
      return {id, 0, 1}
    end
    return {id, 0, 0}`,

  // ARGV[3..]: owner, leaseMs, token, hasPartition, partition, placement, skip...
  // Returns {moved} or {moved, id, partition, payload, enqueuedAt, attempts}.
  // A placement lock (locks.ts: \`P l:<name>\` = "<token> <owner>") held by
  // another owner makes its partition unclaimable here.
  claim: `
    local now = now_ms()
    local moved = promote(now)
    if moved > 0 then signal() end
    local skip = {}
    for i = 9, #ARGV do skip[ARGV[i]] = true end
    local placement, me = ARGV[8], ARGV[3]
    local function elsewhere(p)
      if placement == '' then return false end
      local v = redis.call('GET', P .. 'l:' .. placement .. p)
      if not v then return false end
      local space = string.find(v, ' ', 1, true)
      return not space or string.sub(v, space + 1) ~= me
    end
    local chosen = nil
    if ARGV[6] == '1' then
      if not skip[ARGV[7]] and redis.call('ZSCORE', READY, ARGV[7]) and not elsewhere(ARGV[7]) then
        chosen = ARGV[7]
      end
    else
      local start = 0
      while not chosen do
        local batch = redis.call('ZRANGE', READY, start, start + 99)
        if #batch == 0 then break end
        for _, p in ipairs(batch) do
          if not skip[p] and not elsewhere(p) then
            chosen = p
            break
          end
        end
        start = start + 100
      end
    end
    if not chosen then return {moved} end
    local id = redis.call('LINDEX', list_key(chosen), 0)
    -- Self-heal a head whose message hash vanished (e.g. evicted by a maxmemory
    -- policy other than noeviction): drop the dangling id, refile, report nothing.
    if id and redis.call('EXISTS', msg_key(id)) == 0 then
      redis.call('LPOP', list_key(chosen))
      redis.call('ZREM', IDS, id)
      id = nil
    end
    if not id then
      place(chosen, now)
      return {moved}
    end
    local attempts = redis.call('HINCRBY', msg_key(id), 'a', 1)
    redis.call('HSET', LEASE, chosen, cjson.encode({ARGV[5], ARGV[3], id}))
    redis.call('ZREM', READY, chosen)
    redis.call('ZADD', LEASES, now + tonumber(ARGV[4]), chosen)
    local f = redis.call('HMGET', msg_key(id), 'd', 't')
    return {moved, id, chosen, f[1], f[2], attempts}`,

  // ARGV[3..]: partition, id, token, leaseMs. Returns 1 when extended.
  extend: `
    local p = ARGV[3]
    if not held(p, ARGV[4], ARGV[5]) then return 0 end
    redis.call('ZREM', READY, p)
    redis.call('ZREM', DELAYED, p)
    redis.call('ZADD', LEASES, now_ms() + tonumber(ARGV[6]), p)
    return 1`,

  // ARGV[3..]: partition, id, token. Returns 0 (lease lost), 1, or 2 (partition deliverable).
  ack: `
    local p, id = ARGV[3], ARGV[4]
    if not held(p, id, ARGV[5]) then return 0 end
    redis.call('HDEL', LEASE, p)
    redis.call('ZREM', LEASES, p)
    redis.call('LREM', list_key(p), 1, id)
    redis.call('DEL', msg_key(id))
    redis.call('ZREM', IDS, id)
    if place(p, now_ms()) == 1 then
      signal()
      return 2
    end
    return 1`,

  // ARGV[3..]: partition, id, token, delayMs. Returns like ack.
  release: `
    local p, id = ARGV[3], ARGV[4]
    if not held(p, id, ARGV[5]) then return 0 end
    local now = now_ms()
    local delay = tonumber(ARGV[6])
    if delay > 0 then redis.call('HSET', msg_key(id), 'nb', now + delay) end
    redis.call('HDEL', LEASE, p)
    redis.call('ZREM', LEASES, p)
    if place(p, now) == 1 then
      signal()
      return 2
    end
    return 1`,

  // ARGV[3..]: owners to keep. Returns {released, deliverableNow}.
  releaseAll: `
    local keep = {}
    for i = 3, #ARGV do keep[ARGV[i]] = true end
    local now, n, ready = now_ms(), 0, 0
    local all = redis.call('HGETALL', LEASE)
    for i = 1, #all, 2 do
      local p = all[i]
      if not keep[cjson.decode(all[i + 1])[2]] then
        redis.call('HDEL', LEASE, p)
        redis.call('ZREM', LEASES, p)
        ready = ready + place(p, now)
        n = n + 1
      end
    end
    if ready > 0 then signal() end
    return {n, ready}`,

  // Availability timer. Returns {moved, ms until the next delay/lease runs out or -1}.
  tick: `
    local now = now_ms()
    local moved = promote(now)
    if moved > 0 then signal() end
    local next_at = nil
    local d = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
    if d[2] then next_at = tonumber(d[2]) end
    local l = redis.call('ZRANGE', LEASES, 0, 0, 'WITHSCORES')
    if l[2] and (not next_at or tonumber(l[2]) < next_at) then next_at = tonumber(l[2]) end
    if next_at then return {moved, next_at - now} end
    return {moved, -1}`,
};

type ScriptName = keyof typeof SCRIPTS;

/** A message from its id and `[partition, payload, enqueuedAt, attempts]`; null when gone. */
function toMessage(
  id: string,
  fields: (string | number | null | undefined)[],
): QueuedMessage | null {
  const [partition, payload, enqueuedAt, attempts] = fields;
  if (typeof partition !== "string" || typeof payload !== "string") return null;
  return {
    id,
    partition,
    payload,
    enqueuedAt: Number(enqueuedAt),
    attempts: Number(attempts),
  };
}

export class RedisQueue implements MessageQueue {
  #redis: Redis;
  #prefix: string;
  #origin: string;
  #pubsub: RedisPubSub;
  #scripts: Record<ScriptName, Script>;
  #signal: AvailabilitySignal;
  #ticker: Ticker;
  /** The availability subscription, serialized so first/last-listener flips cannot race. */
  #subscription: Promise<(() => Promise<void>) | undefined> = Promise.resolve(undefined);

  constructor(redis: Redis, prefix: string, pubsub: RedisPubSub) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#pubsub = pubsub;
    this.#origin = randomToken(9);
    const defs = {} as Record<ScriptName, { keys: number; lua: string }>;
    for (const [name, body] of Object.entries(SCRIPTS)) {
      defs[name as ScriptName] = { keys: 0, lua: PRELUDE + body };
    }
    this.#scripts = defineScripts(redis, "queue", defs);
    this.#ticker = new Ticker(() => this.#tick(), AVAILABILITY_POLL_MS);
    this.#signal = new AvailabilitySignal({
      onFirst: () => {
        this.#ticker.start();
        this.#resubscribe(true);
      },
      onLast: () => {
        this.#ticker.stop();
        this.#resubscribe(false);
      },
    });
  }

  async enqueue(
    partition: string,
    payload: string,
    opts: EnqueueOptions = {},
  ): Promise<{ id: string; duplicate: boolean }> {
    const { id, delay, dedupeKey, dedupeTtl } = enqueueOptions(opts);
    const [resultId, duplicate, ready] = (await this.#run(
      "enqueue",
      partition,
      payload,
      id,
      dedupeKey === undefined ? "0" : "1",
      dedupeKey ?? "",
      dedupeTtl,
      delay,
    )) as [string, number, number];
    if (ready === 1) this.#signal.fire();
    else if (duplicate === 0 && delay > 0) this.#ticker.poke();
    return { id: resultId, duplicate: duplicate === 1 };
  }

  async claim(owner: string, leaseMs: number, opts: ClaimOptions = {}): Promise<QueueClaim | null> {
    const lease = positiveMs(leaseMs, "leaseMs");
    const leaseToken = randomToken(18);
    const reply = (await this.#run(
      "claim",
      owner,
      lease,
      leaseToken,
      opts.partition === undefined ? "0" : "1",
      opts.partition ?? "",
      opts.placement ?? "",
      ...(opts.skip ?? []),
    )) as [number, string?, string?, string?, string?, number?];
    const [moved, id, ...fields] = reply;
    if (moved > 0) this.#signal.fire();
    const msg = id === undefined ? null : toMessage(id, fields);
    if (!msg) return null;
    this.#ticker.poke();
    return { ...msg, leaseToken, owner };
  }

  async extend(claim: QueueClaim, leaseMs: number): Promise<boolean> {
    const lease = positiveMs(leaseMs, "leaseMs");
    const ok =
      (await this.#run("extend", claim.partition, claim.id, claim.leaseToken, lease)) === 1;
    if (ok) this.#ticker.poke();
    return ok;
  }

  async ack(claim: QueueClaim): Promise<boolean> {
    const r = await this.#run("ack", claim.partition, claim.id, claim.leaseToken);
    if (r === 2) this.#signal.fire();
    return r !== 0;
  }

  async release(claim: QueueClaim, opts: { delayMs?: number } = {}): Promise<boolean> {
    const delay = delayMs(opts.delayMs);
    const r = await this.#run("release", claim.partition, claim.id, claim.leaseToken, delay);
    if (r === 2) this.#signal.fire();
    else if (r === 1) this.#ticker.poke();
    return r !== 0;
  }

  async pending(partition?: string, opts: { limit?: number } = {}): Promise<QueuedMessage[]> {
    const stop = (limitOf(opts.limit) ?? 0) - 1;
    const ids =
      partition === undefined
        ? await this.#redis.zrange(this.#key("q:ids"), 0, String(stop))
        : await this.#redis.lrange(this.#key(`q:p:${partition}`), 0, stop);
    return this.#fetch(ids);
  }

  async get(id: string): Promise<QueuedMessage | null> {
    const [msg] = await this.#fetch([id]);
    return msg ?? null;
  }

  async depth(): Promise<number> {
    return this.#redis.zcard(this.#key("q:ids"));
  }

  async releaseAllLeases(exceptOwners: string[] = []): Promise<number> {
    const [released, ready] = (await this.#run("releaseAll", ...exceptOwners)) as [number, number];
    if (ready > 0) this.#signal.fire();
    return released;
  }

  onAvailable(listener: () => void): () => void {
    return this.#signal.add(listener);
  }

  /** Stop the availability timer and drop the subscription (store close). */
  async close(): Promise<void> {
    this.#signal.clear();
    this.#ticker.stop();
    await this.#subscription;
  }

  #run(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    return this.#scripts[name](this.#prefix, this.#origin, ...args);
  }

  #key(suffix: string): string {
    return this.#prefix + suffix;
  }

  /** Messages by id in the given order; ids acked meanwhile are left out. */
  async #fetch(ids: string[]): Promise<QueuedMessage[]> {
    if (ids.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    for (const id of ids) pipeline.hmget(this.#key(`q:m:${id}`), "p", "d", "t", "a");
    const replies = (await pipeline.exec()) ?? [];
    const out: QueuedMessage[] = [];
    replies.forEach(([err, fields], i) => {
      if (err) throw err;
      const msg = toMessage(ids[i]!, fields as (string | null)[]);
      if (msg) out.push(msg);
    });
    return out;
  }

  async #tick(): Promise<number | undefined> {
    const [moved, nextIn] = (await this.#run("tick")) as [number, number];
    if (moved > 0) this.#signal.fire();
    return nextIn < 0 ? undefined : nextIn;
  }

  /** Follow other gateways' signals while someone listens here. */
  #resubscribe(on: boolean): void {
    const channel = this.#key("q:available");
    this.#subscription = this.#subscription.then(async (unsubscribe) => {
      try {
        if (!on) {
          await unsubscribe?.();
          return undefined;
        }
        if (unsubscribe) return unsubscribe;
        return await this.#pubsub.subscribeRaw(channel, (origin) => {
          if (origin !== this.#origin) this.#signal.fire();
        });
      } catch (err) {
        log.warn({ err }, "queue availability subscription failed");
        return on ? undefined : unsubscribe;
      }
    });
  }
}
