import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStore } from "../../src/store/index.ts";
import type { RedisStore } from "../../src/store/redis/store.ts";
import { sleep, storeContract } from "./contract.ts";

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
let admin: Redis;

beforeAll(async () => {
  admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  let lastError: Error | undefined;
  admin.on("error", (err: Error) => {
    lastError = err;
  });
  try {
    await admin.connect();
    await admin.ping();
  } catch (err) {
    const reason = (lastError ?? (err as Error)).message;
    throw new Error(
      `Redis is not reachable at ${url} (${reason}). The Redis store suite needs a real Redis: start one (redis-server) or set REDIS_URL.`,
    );
  }
});

afterAll(async () => {
  if (admin?.status !== "ready") return;
  let cursor = "0";
  do {
    const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await admin.del(...keys);
  } while (cursor !== "0");
  await admin.quit();
});

storeContract(
  "redis",
  (scope) => createStore({ driver: "redis", url, prefix: `${prefix}${scope}:` }),
  {
    sharedAcrossInstances: true,
  },
);

describe("redis store specifics", () => {
  it("fails fast with an actionable error when Redis is unreachable", async () => {
    const err = await createStore({ driver: "redis", url: "redis://:hunter22@127.0.0.1:1" }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: "store_unreachable" });
    expect(String((err as Error).message)).toMatch(
      /cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/,
    );
    expect(String((err as Error).message)).not.toContain("hunter22");
  });

  it("keeps every key under its prefix and isolated from other prefixes", async () => {
    const mine = `${prefix}iso-a:`;
    const a = await createStore({ driver: "redis", url, prefix: mine });
    const b = await createStore({ driver: "redis", url, prefix: `${prefix}iso-b:` });
    await a.kv.set("k", "v");
    await a.queue.enqueue("p", "m", { dedupeKey: "d" });
    await a.streams.append("s", "e");
    await a.locks.acquire("l", "o", 60_000);
    const keys = await admin.keys(`${prefix}iso-*`);
    expect(keys.length).toBeGreaterThan(5);
    expect(keys.every((k) => k.startsWith(mine))).toBe(true);
    expect(await b.kv.get("k")).toBeNull();
    expect(await b.queue.depth()).toBe(0);
    expect(await b.streams.length("s")).toBe(0);
    expect(await b.locks.holder("l")).toBeNull();
    await Promise.all([a.close(), b.close()]);
  });

  it("prunes expired keys from the list index", async () => {
    const p = `${prefix}sweep:`;
    const store = (await createStore({ driver: "redis", url, prefix: p })) as RedisStore;
    await store.kv.set("gone", "v", { ttlMs: 10 });
    await store.kv.set("kept", "v");
    await sleep(40);
    while (!(await store.kv.sweep(10))) {}
    expect(await admin.zrange(`${p}kvi`, 0, "-1")).toEqual(["kept"]);
    await store.close();
  });

  it("keeps working after the server forgets its scripts", async () => {
    const store = await createStore({ driver: "redis", url, prefix: `${prefix}flush:` });
    await store.queue.enqueue("p", "m");
    await admin.script("FLUSH");
    const c = await store.queue.claim("w", 60_000);
    expect(await store.queue.ack(c!)).toBe(true);
    expect(await store.kv.incr("n")).toBe(1);
    await store.close();
  });
});
