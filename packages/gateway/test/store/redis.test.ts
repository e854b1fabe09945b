import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStore } from "../../src/store/index.ts";
import { issuesFromInfo, parseInfo } from "../../src/store/redis/diagnose.ts";
import { RedisPubSub } from "../../src/store/redis/pubsub.ts";
import type { RedisStore } from "../../src/store/redis/store.ts";
import { RedisStreams } from "../../src/store/redis/streams.ts";
import { sleep, storeContract, waitFor } from "./contract.ts";

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
    while (!(await store.rawKv.sweep(10))) {}
    expect(await admin.zrange(`${p}kvi`, 0, "-1")).toEqual(["kept"]);
    await store.close();
  });

  it("keeps working after the server forgets its scripts", async () => {
    const store = await createStore({ driver: "redis", url, prefix: `${prefix}flush:` });
    await store.queue.enqueue("p", "m");
    await store.streams.append("s", "before");
    await admin.script("FLUSH");
    const c = await store.queue.claim("w", 60_000);
    expect(await store.queue.ack(c!)).toBe(true);
    expect(await store.kv.incr("n")).toBe(1);
    // Several in one tick: the auto-pipeline's EVALSHAs fall back together.
    await Promise.all(["a", "b", "c"].map((d) => store.streams.append("s", d, { ttlMs: 60_000 })));
    expect((await store.streams.range("s")).map((e) => e.data)).toEqual(["before", "a", "b", "c"]);
    await store.close();
  });
});

/** A port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface PrivateRedis {
  url: string;
  port: number;
  admin: Redis;
  stop(): Promise<void>;
}

/** A redis-server of this test's own, so its configuration can be changed freely. */
async function privateRedis(args: string[]): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "lobu-redis-"));
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  await new Promise<void>((resolve, reject) => {
    child.on("error", (err) =>
      reject(
        new Error(`cannot start redis-server (${err.message}); install Redis to run this test`),
      ),
    );
    child.on("exit", (code) => reject(new Error(`redis-server exited (${code}):\n${output}`)));
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes("Ready to accept connections")) resolve();
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
  });
  const url = `redis://127.0.0.1:${port}`;
  const admin = new Redis(url);
  return {
    url,
    port,
    admin,
    async stop() {
      admin.disconnect();
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe("redis stream readers", () => {
  /** Streams on connections of the test's own, so that one can be cut. */
  async function streamsOn() {
    const scope = `${prefix}readers-${randomBytes(3).toString("hex")}:`;
    const redis = new Redis(url, { maxRetriesPerRequest: 1 });
    const sub = new Redis(url);
    const pubsub = new RedisPubSub(redis, sub, scope);
    const streams = new RedisStreams(redis, scope, pubsub, sub);
    const close = () => {
      streams.close();
      redis.disconnect();
      sub.disconnect();
    };
    return { streams, sub, key: (s: string) => `${scope}s:${s}`, close };
  }

  it("hold no connection of their own, however many are blocked", async () => {
    const s = await streamsOn();
    try {
      const names = async () => String(await admin.call("CLIENT", "LIST")).split("\n").length;
      const before = await names();
      const reads = Array.from({ length: 50 }, (_, i) =>
        s.streams.read(`many-${i}`, undefined, { blockMs: 30_000 }),
      );
      await sleep(100);
      expect(await names()).toBeLessThan(before + 10);
      for (let i = 0; i < 50; i++) await s.streams.append(`many-${i}`, `entry ${i}`);
      const got = await Promise.all(reads);
      expect(got.map((r) => r.map((e) => e.data))).toEqual(
        Array.from({ length: 50 }, (_, i) => [`entry ${i}`]),
      );
    } finally {
      s.close();
    }
  });

  it("find an entry whose notice was lost: at the end of their wait, and when the subscriber reconnects", async () => {
    const s = await streamsOn();
    try {
      // Written behind the store's back: no message on the channel.
      const quiet = s.streams.read("quiet", undefined, { blockMs: 300 });
      await sleep(50);
      await admin.xadd(s.key("quiet"), "*", "d", "unannounced");
      expect((await quiet).map((e) => e.data)).toEqual(["unannounced"]);
      // A long wait: the subscriber's reconnect makes every reader look again.
      const long = s.streams.read("long", undefined, { blockMs: 60_000 });
      await sleep(50);
      await admin.xadd(s.key("long"), "*", "d", "while away");
      s.sub.disconnect(true);
      expect((await long).map((e) => e.data)).toEqual(["while away"]);
    } finally {
      s.close();
    }
  });

  it("end on abort and on close without an entry", async () => {
    const s = await streamsOn();
    const stop = new AbortController();
    const aborted = s.streams.read("a", undefined, { blockMs: 60_000, signal: stop.signal });
    const closed = s.streams.read("b", undefined, { blockMs: 60_000 });
    await sleep(50);
    stop.abort();
    expect(await aborted).toEqual([]);
    s.close();
    expect(await closed).toEqual([]);
  });
});

describe("redis setup checks", () => {
  it("warns about an evicting policy and AOF off, and is clean once both are fixed", async () => {
    const server = await privateRedis(["--maxmemory-policy", "allkeys-lru", "--appendonly", "no"]);
    try {
      const store = await createStore({ driver: "redis", url: server.url });
      const issues = await store.diagnose();
      expect(issues.map((i) => i.level)).toEqual(["warn", "warn"]);
      expect(issues[0]).toMatchObject({
        problem: "Redis maxmemory-policy is allkeys-lru",
        fix: expect.stringContaining("noeviction"),
      });
      expect(issues[1]).toMatchObject({
        problem: expect.stringContaining("appendonly"),
        fix: expect.stringContaining("appendonly yes"),
      });
      await server.admin.config("SET", "maxmemory-policy", "noeviction");
      await server.admin.config("SET", "appendonly", "yes");
      expect(await store.diagnose()).toEqual([]);
      await store.close();
    } finally {
      await server.stop();
    }
  });

  it("refuses a Cluster-mode server and a replica with what to do instead", async () => {
    const cluster = await privateRedis(["--cluster-enabled", "yes"]);
    const primary = await privateRedis([]);
    const replica = await privateRedis(["--replicaof", "127.0.0.1", String(primary.port)]);
    try {
      const inCluster = await createStore({ driver: "redis", url: cluster.url }).catch(
        (e: unknown) => e,
      );
      expect(inCluster).toMatchObject({
        code: "store_unsupported",
        message: expect.stringContaining("Cluster mode"),
        hint: expect.stringContaining("single Redis node"),
      });
      const onReplica = await createStore({ driver: "redis", url: replica.url }).catch(
        (e: unknown) => e,
      );
      expect(onReplica).toMatchObject({
        code: "store_unsupported",
        message: expect.stringContaining("replica"),
        hint: expect.stringContaining("primary"),
      });
      // Refused stores leave no connection behind.
      await waitFor(
        async () => !String(await cluster.admin.client("LIST")).includes("lobu-store"),
        "the refused store's connection to close",
      );
    } finally {
      await Promise.all([cluster.stop(), replica.stop(), primary.stop()]);
    }
  });

  it("refuses Redis older than 6.2 and skips fields a server does not report", () => {
    const old = issuesFromInfo(
      parseInfo(
        "# Server\r\nredis_version:6.0.16\r\n\r\n# Memory\r\nmaxmemory_policy:noeviction\r\n",
      ),
    );
    expect(old).toEqual([
      { level: "fail", problem: "Redis 6.0.16 is older than 6.2", fix: expect.any(String) },
    ]);
    expect(issuesFromInfo(parseInfo("redis_version:7.2.4\nvalkey_version:8.0.1\n"))).toEqual([]);
  });
});
