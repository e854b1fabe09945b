/**
 * The storage port's contract: one suite every adapter must pass, so the
 * embedded and the Redis store behave the same for the code above them.
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { MessageQueue, QueueClaim, Store } from "../../src/store/index.ts";

/** Open a store on the backend namespace `scope`; the same scope means the same data. */
export type MakeStore = (scope: string) => Promise<Store>;

export interface ContractOptions {
  /**
   * Whether a second Store opened on the same scope sees the first one's
   * blocking-read wake-ups, pub/sub messages and queue signals (true for
   * Redis; SQLite has one owning process, so its tests use one instance).
   */
  sharedAcrossInstances: boolean;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll until `check` passes (no timing is asserted; the deadline only stops a hang). */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 10_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function cmpId(a: string, b: string): number {
  const [am, as] = a.split("-").map(Number) as [number, number];
  const [bm, bs] = b.split("-").map(Number) as [number, number];
  return am - bm || as - bs;
}

export function storeContract(name: string, makeStore: MakeStore, opts: ContractOptions): void {
  describe(`${name} store contract`, () => {
    const run = randomBytes(4).toString("hex");
    const opened: Store[] = [];
    let scopes = 0;

    /** A store on a fresh namespace, and a way to open more instances on it. */
    async function fresh(): Promise<{ store: Store; other: () => Promise<Store> }> {
      const scope = `t${++scopes}-${run}`;
      const open = async () => {
        const s = await makeStore(scope);
        opened.push(s);
        return s;
      };
      const store = await open();
      return { store, other: async () => (opts.sharedAcrossInstances ? open() : store) };
    }

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    it("answers ping", async () => {
      const { store } = await fresh();
      await expect(store.ping()).resolves.toBeUndefined();
    });

    it("rejects bad arguments with a clear error and writes nothing", async () => {
      const { kv, queue, streams, locks } = (await fresh()).store;
      const rejects = (p: Promise<unknown>, code: string, message: RegExp) =>
        expect(p).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
      await rejects(kv.set("k", "v", { ttlMs: 0 }), "store_invalid_duration", /ttlMs must be/);
      await rejects(kv.set("k", "v", { ttlMs: Number.NaN }), "store_invalid_duration", /ttlMs/);
      await rejects(
        kv.compareAndSet("k", null, "v", { ttlMs: -5 }),
        "store_invalid_duration",
        /ttlMs/,
      );
      await rejects(kv.incr("k", 1.5), "store_invalid_increment", /integer/);
      await rejects(kv.incr("k", 1, { ttlMs: 0 }), "store_invalid_duration", /ttlMs/);
      await rejects(kv.list("", { limit: 0 }), "store_invalid_limit", /limit must be/);
      expect(await kv.get("k")).toBeNull();

      await rejects(
        queue.enqueue("p", "m", { id: "" }),
        "store_invalid_id",
        /id must not be empty/,
      );
      await rejects(
        queue.enqueue("p", "m", { dedupeKey: "d", dedupeTtlMs: 0 }),
        "store_invalid_duration",
        /dedupeTtlMs/,
      );
      await rejects(
        queue.enqueue("p", "m", { delayMs: Number.POSITIVE_INFINITY }),
        "store_invalid_duration",
        /delayMs must be/,
      );
      await rejects(queue.claim("w", 0), "store_invalid_duration", /leaseMs/);
      await rejects(queue.pending(undefined, { limit: 1.5 }), "store_invalid_limit", /limit/);
      expect(await queue.depth()).toBe(0);

      await rejects(
        streams.append("s", "x", { maxLen: 0 }),
        "store_invalid_limit",
        /maxLen must be/,
      );
      await rejects(streams.append("s", "x", { ttlMs: -1 }), "store_invalid_duration", /ttlMs/);
      await rejects(
        streams.read("s", undefined, { blockMs: Number.NaN }),
        "store_invalid_duration",
        /blockMs must be/,
      );
      expect(await streams.length("s")).toBe(0);

      await rejects(locks.acquire("l", "o", 0), "store_invalid_duration", /ttlMs/);
      expect(await locks.holder("l")).toBeNull();
    });

    describe("kv", () => {
      it("gets, sets, deletes", async () => {
        const { kv } = (await fresh()).store;
        expect(await kv.get("a")).toBeNull();
        expect(await kv.set("a", "1")).toBe(true);
        expect(await kv.get("a")).toBe("1");
        expect(await kv.set("a", "2")).toBe(true);
        expect(await kv.get("a")).toBe("2");
        expect(await kv.set("empty", "")).toBe(true);
        expect(await kv.get("empty")).toBe("");
        expect(await kv.del("a")).toBe(true);
        expect(await kv.del("a")).toBe(false);
        expect(await kv.get("a")).toBeNull();
      });

      it("getMany keeps the order of the keys asked for", async () => {
        const { kv } = (await fresh()).store;
        await kv.set("x", "1");
        await kv.set("z", "3");
        expect(await kv.getMany(["z", "missing", "x", "z"])).toEqual(["3", null, "1", "3"]);
        expect(await kv.getMany([])).toEqual([]);
      });

      it("ifNotExists only sets an absent key", async () => {
        const { kv } = (await fresh()).store;
        expect(await kv.set("k", "first", { ifNotExists: true })).toBe(true);
        expect(await kv.set("k", "second", { ifNotExists: true })).toBe(false);
        expect(await kv.get("k")).toBe("first");
      });

      it("reports ttl: remaining ms, -1 without expiry, null when absent", async () => {
        const { kv } = (await fresh()).store;
        await kv.set("t", "v", { ttlMs: 60_000 });
        const ttl = await kv.ttl("t");
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(60_000);
        await kv.set("p", "v");
        expect(await kv.ttl("p")).toBe(-1);
        expect(await kv.ttl("missing")).toBeNull();
        // A plain set replaces the value and its expiry.
        await kv.set("t", "w");
        expect(await kv.ttl("t")).toBe(-1);
      });

      it("hides expired keys from every read and lets them be created again", async () => {
        const { kv } = (await fresh()).store;
        await kv.set("gone", "v", { ttlMs: 20 });
        await kv.set("gone2", "v", { ttlMs: 20 });
        await kv.set("gone3", "v", { ttlMs: 20 });
        await kv.set("gone4", "v", { ttlMs: 20 });
        await kv.set("stay", "v");
        await sleep(60);
        expect(await kv.get("gone")).toBeNull();
        expect(await kv.getMany(["gone", "stay"])).toEqual([null, "v"]);
        expect(await kv.ttl("gone")).toBeNull();
        expect(await kv.list("")).toEqual([{ key: "stay", value: "v" }]);
        expect(await kv.take("gone")).toBeNull();
        expect(await kv.del("gone2")).toBe(false);
        expect(await kv.compareAndSet("gone3", "v", "x")).toBe(false);
        expect(await kv.compareAndSet("gone3", null, "x")).toBe(true);
        expect(await kv.set("gone", "again", { ifNotExists: true })).toBe(true);
        expect(await kv.get("gone")).toBe("again");
        expect(await kv.incr("gone4")).toBe(1);
      });

      it("incr counts from zero, applies the ttl on create only, rejects non-integers", async () => {
        const { kv } = (await fresh()).store;
        expect(await kv.incr("n")).toBe(1);
        expect(await kv.incr("n", 5)).toBe(6);
        expect(await kv.incr("n", -10)).toBe(-4);
        expect(await kv.get("n")).toBe("-4");
        expect(await kv.ttl("n")).toBe(-1);

        expect(await kv.incr("limited", 1, { ttlMs: 60_000 })).toBe(1);
        const first = await kv.ttl("limited");
        expect(first).toBeGreaterThan(0);
        expect(await kv.incr("limited", 1, { ttlMs: 120_000 })).toBe(2);
        const second = await kv.ttl("limited");
        expect(second).toBeGreaterThan(0);
        expect(second).toBeLessThanOrEqual(60_000);

        expect(await kv.incr("n", 2, { ttlMs: 60_000 })).toBe(-2);
        expect(await kv.ttl("n")).toBe(-1);

        await kv.set("text", "hello");
        await expect(kv.incr("text")).rejects.toThrow(/integer/);
        expect(await kv.get("text")).toBe("hello");
      });

      it("incr is atomic under concurrency", async () => {
        const { store, other } = await fresh();
        const second = await other();
        await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 ? store : second).kv.incr("c")),
        );
        expect(await store.kv.get("c")).toBe("50");
      });

      it("compareAndSet swaps only on the expected value (null = absent)", async () => {
        const { kv } = (await fresh()).store;
        expect(await kv.compareAndSet("k", null, "a")).toBe(true);
        expect(await kv.compareAndSet("k", null, "b")).toBe(false);
        expect(await kv.compareAndSet("k", "wrong", "b")).toBe(false);
        expect(await kv.get("k")).toBe("a");
        expect(await kv.compareAndSet("k", "a", "b", { ttlMs: 60_000 })).toBe(true);
        expect(await kv.get("k")).toBe("b");
        expect(await kv.ttl("k")).toBeGreaterThan(0);
        await kv.set("e", "");
        expect(await kv.compareAndSet("e", null, "x")).toBe(false);
        expect(await kv.compareAndSet("e", "", "x")).toBe(true);
      });

      it("compareAndSet lets exactly one of many racers win", async () => {
        const { store, other } = await fresh();
        const second = await other();
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 ? store : second).kv.compareAndSet("owner", null, `racer-${i}`),
          ),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
      });

      it("update writes what fn returns, from null for an absent key, and returns it", async () => {
        const { kv } = (await fresh()).store;
        const seen: (string | null)[] = [];
        const write = (current: string | null) => {
          seen.push(current);
          return `${current ?? ""}+`;
        };
        expect(await kv.update("u", write)).toBe("+");
        expect(await kv.update("u", write, { ttlMs: 60_000 })).toBe("++");
        expect(seen).toEqual([null, "+"]);
        expect(await kv.get("u")).toBe("++");
        expect(await kv.ttl("u")).toBeGreaterThan(0);
        // Like set: a write without ttlMs leaves the value without one.
        await kv.update("u", write);
        expect(await kv.ttl("u")).toBe(-1);
      });

      it("update writes nothing when fn returns undefined or throws", async () => {
        const { kv } = (await fresh()).store;
        expect(await kv.update("absent", () => undefined)).toBeNull();
        expect(await kv.get("absent")).toBeNull();
        await kv.set("k", "v", { ttlMs: 60_000 });
        expect(await kv.update("k", () => undefined)).toBe("v");
        await expect(
          kv.update("k", () => {
            throw new Error("no");
          }),
        ).rejects.toThrow("no");
        expect(await kv.get("k")).toBe("v");
        expect(await kv.ttl("k")).toBeGreaterThan(0);
      });

      it("update loses nothing when several writers update one key at once", async () => {
        const { store, other } = await fresh();
        const writers = [store, await other(), await other(), await other()];
        const rounds = 5;
        await Promise.all(
          writers.flatMap((s, w) =>
            Array.from({ length: rounds }, (_, r) =>
              s.kv.update("list", (current) => {
                const items = current === null ? [] : (JSON.parse(current) as string[]);
                return JSON.stringify([...items, `${w}.${r}`]);
              }),
            ),
          ),
        );
        const items = JSON.parse((await store.kv.get("list"))!) as string[];
        expect(items).toHaveLength(writers.length * rounds);
        expect(new Set(items).size).toBe(writers.length * rounds);
      });

      it("update gives up with a conflict error after maxAttempts lost races, writing nothing", async () => {
        const { kv } = (await fresh()).store;
        // Another writer changes the key between every read and write of the update.
        await kv.set("hot", "0");
        let calls = 0;
        const interfere = (current: string | null) => {
          calls++;
          void kv.set("hot", `other-${calls}`);
          return `mine-${current}`;
        };
        const err = await kv.update("hot", interfere, { maxAttempts: 3 }).catch((e) => e);
        expect(err).toMatchObject({ code: "conflict", status: 409, details: { key: "hot" } });
        expect(err.message).toMatch(/kept changing.*3 attempts/);
        expect(calls).toBe(3);
        expect(await kv.get("hot")).toBe("other-3");
        await expect(kv.update("hot", () => "x", { maxAttempts: 0 })).rejects.toMatchObject({
          code: "store_invalid_limit",
        });
      });

      it("take reads and deletes, once", async () => {
        const { store, other } = await fresh();
        const second = await other();
        await store.kv.set("token", "secret");
        expect(await store.kv.take("token")).toBe("secret");
        expect(await store.kv.take("token")).toBeNull();
        expect(await store.kv.get("token")).toBeNull();

        await store.kv.set("once", "v");
        const both = await Promise.all([store.kv.take("once"), second.kv.take("once")]);
        expect(both.filter((v) => v === "v")).toHaveLength(1);
        expect(both.filter((v) => v === null)).toHaveLength(1);
      });

      it("lists by prefix in byte order with limit and cursor", async () => {
        const { kv } = (await fresh()).store;
        const keys = ["agent:b", "agent:a", "agent:c", "agentx", "agent", "other:a", "agent:a:1"];
        for (const k of keys) await kv.set(k, `v-${k}`);
        expect((await kv.list("agent:")).map((e) => e.key)).toEqual([
          "agent:a",
          "agent:a:1",
          "agent:b",
          "agent:c",
        ]);
        expect(await kv.list("agent:", { limit: 2 })).toEqual([
          { key: "agent:a", value: "v-agent:a" },
          { key: "agent:a:1", value: "v-agent:a:1" },
        ]);
        expect((await kv.list("agent:", { after: "agent:a:1" })).map((e) => e.key)).toEqual([
          "agent:b",
          "agent:c",
        ]);
        expect((await kv.list("agent:", { after: "agent:a", limit: 1 })).map((e) => e.key)).toEqual(
          ["agent:a:1"],
        );
        // A cursor before the prefix starts at the prefix; one past it yields nothing.
        expect((await kv.list("agent:", { after: "a" })).map((e) => e.key)).toHaveLength(4);
        expect(await kv.list("agent:", { after: "zzz" })).toEqual([]);
        expect((await kv.list("")).map((e) => e.key)).toEqual([...keys].sort());
        expect(await kv.list("nothing:")).toEqual([]);
      });

      it("lists prefixes containing pattern characters literally", async () => {
        const { kv } = (await fresh()).store;
        for (const k of ["a*b:1", "a*b:2", "axb:1", "a?c:1", "abc:1", "a[x]:1", "ax]:1", "a%_:1"]) {
          await kv.set(k, "v");
        }
        expect((await kv.list("a*b:")).map((e) => e.key)).toEqual(["a*b:1", "a*b:2"]);
        expect((await kv.list("a?c:")).map((e) => e.key)).toEqual(["a?c:1"]);
        expect((await kv.list("a[x]")).map((e) => e.key)).toEqual(["a[x]:1"]);
        expect((await kv.list("a%_")).map((e) => e.key)).toEqual(["a%_:1"]);
      });

      it("lists past many keys without a limit, and non-ASCII keys in byte order", async () => {
        const { kv } = (await fresh()).store;
        const many = Array.from({ length: 1200 }, (_, i) => `bulk:${String(i).padStart(5, "0")}`);
        await Promise.all(many.map((k) => kv.set(k, "v")));
        const listed = await kv.list("bulk:");
        expect(listed.map((e) => e.key)).toEqual(many);
        for (const k of ["u:é", "u:z", "u:日本", "u:a"]) await kv.set(k, k);
        expect((await kv.list("u:")).map((e) => e.key)).toEqual(["u:a", "u:z", "u:é", "u:日本"]);
      });
    });

    describe("queue", () => {
      const claimAll = async (queue: MessageQueue, owner = "w") => {
        const out: QueueClaim[] = [];
        for (;;) {
          const c = await queue.claim(owner, 60_000);
          if (!c) return out;
          out.push(c);
        }
      };

      it("delivers a partition in FIFO order, one message at a time", async () => {
        const { queue } = (await fresh()).store;
        for (const p of ["1", "2", "3"]) await queue.enqueue("p", `m${p}`);
        const seen: string[] = [];
        for (let i = 0; i < 3; i++) {
          const c = await queue.claim("w", 60_000);
          expect(c).not.toBeNull();
          expect(await queue.claim("w", 60_000)).toBeNull(); // partition busy
          seen.push(c!.payload);
          expect(await queue.ack(c!)).toBe(true);
        }
        expect(seen).toEqual(["m1", "m2", "m3"]);
        expect(await queue.claim("w", 60_000)).toBeNull();
        expect(await queue.depth()).toBe(0);
      });

      it("returns a claim with the message, owner and first attempt", async () => {
        const { queue } = (await fresh()).store;
        const before = Date.now();
        const { id, duplicate } = await queue.enqueue("part", "payload");
        expect(duplicate).toBe(false);
        const c = await queue.claim("gw-1", 60_000);
        expect(c).toMatchObject({ id, partition: "part", payload: "payload", attempts: 1 });
        expect(c!.owner).toBe("gw-1");
        expect(typeof c!.leaseToken).toBe("string");
        // Generous bounds: the Redis adapter stamps with the server clock.
        expect(Math.abs(c!.enqueuedAt - before)).toBeLessThan(60_000);
      });

      it("skips leased partitions and serves others in parallel", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("p1", "a1");
        await queue.enqueue("p1", "a2");
        await queue.enqueue("p2", "b1");
        const first = await queue.claim("w1", 60_000);
        const second = await queue.claim("w2", 60_000);
        expect(first?.payload).toBe("a1");
        expect(second?.payload).toBe("b1");
        expect(await queue.claim("w3", 60_000)).toBeNull();
        expect(await queue.ack(second!)).toBe(true);
        expect(await queue.claim("w3", 60_000)).toBeNull();
        expect(await queue.ack(first!)).toBe(true);
        expect((await queue.claim("w3", 60_000))?.payload).toBe("a2");
      });

      it("claims the partition whose head is oldest", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("zz", "z1");
        await queue.enqueue("aa", "a1");
        await queue.enqueue("mm", "m1");
        const claims = await claimAll(queue);
        expect(claims.map((c) => c.payload)).toEqual(["z1", "a1", "m1"]);
      });

      it("fairness: a partition with a backlog does not starve a newer one", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("big", "b0");
        await queue.enqueue("big", "b1");
        await queue.enqueue("small", "s0");
        await queue.enqueue("big", "b2");
        const order: string[] = [];
        for (;;) {
          const c = await queue.claim("w", 60_000);
          if (!c) break;
          order.push(c.payload);
          await queue.ack(c);
        }
        // Oldest head first: s0 (older than b2) is served before big's later backlog.
        expect(order).toEqual(["b0", "b1", "s0", "b2"]);
      });

      it("honours skip and partition", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("p1", "a");
        await queue.enqueue("p2", "b");
        await queue.enqueue("p3", "c");
        expect((await queue.claim("w", 60_000, { skip: ["p1", "p2"] }))?.payload).toBe("c");
        expect(await queue.claim("w", 60_000, { skip: ["p1", "p2"] })).toBeNull();
        expect(await queue.claim("w", 60_000, { partition: "p3" })).toBeNull(); // leased
        expect(await queue.claim("w", 60_000, { partition: "p2", skip: ["p2"] })).toBeNull();
        expect(await queue.claim("w", 60_000, { partition: "nope" })).toBeNull();
        expect((await queue.claim("w", 60_000, { partition: "p2" }))?.payload).toBe("b");
        expect((await queue.claim("w", 60_000))?.payload).toBe("a");
      });

      it("leaves a partition placed on another owner to that owner", async () => {
        const { queue, locks } = (await fresh()).store;
        await queue.enqueue("sbx-a", "a");
        await queue.enqueue("sbx-b", "b");
        const held = await locks.acquire("place:sbx-a", "gw-1", 60_000);
        expect(held).not.toBeNull();
        const placement = "place:";
        // gw-2 passes over sbx-a (placed on gw-1), by name too; without placement it would not.
        expect(await queue.claim("gw-2", 60_000, { placement, partition: "sbx-a" })).toBeNull();
        const b = await queue.claim("gw-2", 60_000, { placement });
        expect(b?.payload).toBe("b");
        expect(await queue.claim("gw-2", 60_000, { placement })).toBeNull();
        // Its own placement does not stop gw-1; once released, anyone may claim.
        const a = await queue.claim("gw-1", 60_000, { placement });
        expect(a?.payload).toBe("a");
        await queue.release(a!);
        await locks.release("place:sbx-a", held!);
        expect((await queue.claim("gw-2", 60_000, { placement }))?.payload).toBe("a");
      });

      it("claims a partition whose placement lock has expired", async () => {
        const { queue, locks } = (await fresh()).store;
        await queue.enqueue("sbx-a", "a");
        expect(await locks.acquire("place:sbx-a", "gw-dead", 50)).not.toBeNull();
        await sleep(120);
        expect((await queue.claim("gw-2", 60_000, { placement: "place:" }))?.payload).toBe("a");
      });

      it("skips past many leased and skipped partitions", async () => {
        const { queue } = (await fresh()).store;
        const skip: string[] = [];
        for (let i = 0; i < 250; i++) {
          await queue.enqueue(`s${i}`, "skipped");
          skip.push(`s${i}`);
        }
        await queue.enqueue("target", "found");
        expect((await queue.claim("w", 60_000, { skip }))?.payload).toBe("found");
      });

      it("ack removes the message and frees the partition", async () => {
        const { queue } = (await fresh()).store;
        const { id } = await queue.enqueue("p", "one");
        await queue.enqueue("p", "two");
        const c = await queue.claim("w", 60_000);
        expect(await queue.ack(c!)).toBe(true);
        expect(await queue.get(id)).toBeNull();
        expect(await queue.depth()).toBe(1);
        expect(await queue.ack(c!)).toBe(false); // already acked
        expect((await queue.claim("w", 60_000))?.payload).toBe("two");
      });

      it("release puts the message back first, optionally delayed", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("p", "first");
        await queue.enqueue("p", "second");
        const c = await queue.claim("w", 60_000);
        expect(await queue.release(c!)).toBe(true);
        expect(await queue.release(c!)).toBe(false); // no longer held
        const again = await queue.claim("w", 60_000);
        expect(again).toMatchObject({ id: c!.id, payload: "first", attempts: 2 });

        expect(await queue.release(again!, { delayMs: 60_000 })).toBe(true);
        expect(await queue.claim("w", 60_000)).toBeNull(); // head delayed blocks its partition
        expect((await queue.pending("p")).map((m) => m.payload)).toEqual(["first", "second"]);

        await queue.enqueue("q", "other");
        expect((await queue.claim("w", 60_000))?.payload).toBe("other");
      });

      it("release with a short delay delivers again later", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("p", "retry-me");
        const c = await queue.claim("w", 60_000);
        await queue.release(c!, { delayMs: 30 });
        const again = await waitFor(() => queue.claim("w", 60_000), "the released message");
        expect(again).toMatchObject({ id: c!.id, attempts: 2 });
      });

      it("respects delayMs on enqueue", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("later", "x", { delayMs: 60_000 });
        expect(await queue.claim("w", 60_000)).toBeNull();
        expect(await queue.claim("w", 60_000, { partition: "later" })).toBeNull();
        expect(await queue.depth()).toBe(1);

        // Later messages of the same partition wait behind the delayed head.
        await queue.enqueue("later", "y");
        expect(await queue.claim("w", 60_000)).toBeNull();

        const { id } = await queue.enqueue("soon", "z", { delayMs: 30 });
        const c = await waitFor(() => queue.claim("w", 60_000), "the delayed message");
        expect(c.id).toBe(id);
      });

      it("redelivers after the lease expires, with attempts incremented", async () => {
        const { store, other } = await fresh();
        const second = await other();
        await store.queue.enqueue("p", "work");
        const lost = await store.queue.claim("gw-a", 30);
        expect(lost?.attempts).toBe(1);
        const taken = await waitFor(
          () => second.queue.claim("gw-b", 60_000),
          "redelivery after lease expiry",
        );
        expect(taken).toMatchObject({ id: lost!.id, attempts: 2, owner: "gw-b" });

        // The first owner lost its lease: it can neither extend, ack nor release.
        expect(await store.queue.extend(lost!, 60_000)).toBe(false);
        expect(await store.queue.ack(lost!)).toBe(false);
        expect(await store.queue.release(lost!)).toBe(false);
        expect(await store.queue.get(lost!.id)).not.toBeNull();
        expect(await store.queue.claim("gw-a", 60_000)).toBeNull(); // gw-b holds it

        expect(await second.queue.ack(taken)).toBe(true);
        expect(await store.queue.depth()).toBe(0);
      });

      it("an expired lease nobody took over is still its holder's", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("p", "slow");
        await queue.enqueue("p", "next");
        const c = await queue.claim("w", 20);
        await sleep(60);
        expect(await queue.extend(c!, 60_000)).toBe(true);
        expect(await queue.claim("other", 60_000)).toBeNull(); // extended again
        expect(await queue.ack(c!)).toBe(true);
        expect((await queue.claim("other", 60_000))?.payload).toBe("next");
      });

      it("extend keeps the partition leased", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("p", "m");
        const c = await queue.claim("w", 60_000);
        expect(await queue.extend(c!, 120_000)).toBe(true);
        expect(await queue.claim("w2", 60_000)).toBeNull();
        expect(await queue.ack(c!)).toBe(true);
      });

      it("dedupes on enqueue within dedupeTtlMs, returning the first id", async () => {
        const { queue } = (await fresh()).store;
        const first = await queue.enqueue("p", "evt", { dedupeKey: "slack:E1" });
        const again = await queue.enqueue("p", "evt-retry", { dedupeKey: "slack:E1" });
        expect(first.duplicate).toBe(false);
        expect(again).toEqual({ id: first.id, duplicate: true });
        expect(await queue.depth()).toBe(1);

        // Still a duplicate after the original was processed.
        const c = await queue.claim("w", 60_000);
        await queue.ack(c!);
        expect(await queue.enqueue("p", "late", { dedupeKey: "slack:E1" })).toEqual({
          id: first.id,
          duplicate: true,
        });

        const short = await queue.enqueue("p", "a", { dedupeKey: "k2", dedupeTtlMs: 20 });
        await sleep(60);
        const fresh2 = await queue.enqueue("p", "b", { dedupeKey: "k2", dedupeTtlMs: 20 });
        expect(fresh2.duplicate).toBe(false);
        expect(fresh2.id).not.toBe(short.id);
      });

      it("concurrent duplicate enqueues produce exactly one message", async () => {
        const { store, other } = await fresh();
        const second = await other();
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 ? store : second).queue.enqueue("p", `copy${i}`, { dedupeKey: "same" }),
          ),
        );
        expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
        expect(new Set(results.map((r) => r.id)).size).toBe(1);
        expect(await store.queue.depth()).toBe(1);
      });

      it("treats an explicit id that is already queued as a duplicate", async () => {
        const { queue } = (await fresh()).store;
        expect(await queue.enqueue("p", "a", { id: "fixed-1" })).toEqual({
          id: "fixed-1",
          duplicate: false,
        });
        expect(await queue.enqueue("p", "b", { id: "fixed-1" })).toEqual({
          id: "fixed-1",
          duplicate: true,
        });
        expect((await queue.get("fixed-1"))?.payload).toBe("a");
      });

      it("lists pending messages oldest first, gets by id, counts depth", async () => {
        const { queue } = (await fresh()).store;
        const a = await queue.enqueue("p1", "a");
        const b = await queue.enqueue("p2", "b");
        const c = await queue.enqueue("p1", "c");
        const claim = await queue.claim("w", 60_000);
        expect(claim?.id).toBe(a.id);
        const all = await queue.pending();
        expect(all.map((m) => m.id)).toEqual([a.id, b.id, c.id]);
        expect(all[0]).toMatchObject({ partition: "p1", payload: "a", attempts: 1 });
        expect(all[1]).toMatchObject({ partition: "p2", payload: "b", attempts: 0 });
        expect((await queue.pending(undefined, { limit: 2 })).map((m) => m.id)).toEqual([
          a.id,
          b.id,
        ]);
        expect((await queue.pending("p1")).map((m) => m.payload)).toEqual(["a", "c"]);
        expect((await queue.pending("p1", { limit: 1 })).map((m) => m.payload)).toEqual(["a"]);
        expect(await queue.pending("none")).toEqual([]);
        expect(await queue.get(b.id)).toMatchObject({ id: b.id, partition: "p2", payload: "b" });
        expect(await queue.get("missing")).toBeNull();
        expect(await queue.depth()).toBe(3);
      });

      it("releaseAllLeases drops leases except those of the listed owners", async () => {
        const { queue } = (await fresh()).store;
        await queue.enqueue("p1", "a");
        await queue.enqueue("p2", "b");
        await queue.enqueue("p3", "c");
        const keep = await queue.claim("me", 60_000);
        const drop1 = await queue.claim("dead-1", 60_000);
        const drop2 = await queue.claim("dead-2", 60_000);
        expect(await queue.releaseAllLeases(["me"])).toBe(2);
        expect(await queue.ack(drop1!)).toBe(false);
        const redelivered = await claimAll(queue, "me");
        expect(redelivered.map((c) => c.id).sort()).toEqual([drop1!.id, drop2!.id].sort());
        expect(redelivered.every((c) => c.attempts === 2)).toBe(true);
        expect(await queue.ack(keep!)).toBe(true);
        expect(await queue.releaseAllLeases()).toBe(2);
        expect(await queue.releaseAllLeases()).toBe(0);
      });

      it("signals onAvailable after enqueue, ack and release", async () => {
        const { queue } = (await fresh()).store;
        let signals = 0;
        const off = queue.onAvailable(() => signals++);
        await queue.enqueue("p", "one");
        await waitFor(() => signals >= 1, "a signal after enqueue");

        const c1 = await queue.claim("w", 60_000);
        await queue.enqueue("p", "two");
        let before = signals;
        await queue.ack(c1!); // "two" is now the deliverable head
        await waitFor(() => signals > before, "a signal after ack with more queued");

        const c2 = await queue.claim("w", 60_000);
        before = signals;
        await queue.release(c2!);
        await waitFor(() => signals > before, "a signal after release");
        off();
      });

      it("signals onAvailable when a delay or a lease runs out", async () => {
        const { queue } = (await fresh()).store;
        let signals = 0;
        const off = queue.onAvailable(() => signals++);
        await queue.enqueue("d", "delayed", { delayMs: 50 });
        await waitFor(() => signals >= 1, "a signal when the delay passed");
        const c = await queue.claim("w", 50);
        expect(c?.payload).toBe("delayed");
        const before = signals;
        await waitFor(() => signals > before, "a signal when the lease expired");
        const again = await waitFor(() => queue.claim("w2", 60_000), "the redelivery");
        expect(again.attempts).toBe(2);
        off();
      });

      it("stops signalling a listener that unsubscribed", async () => {
        const { queue } = (await fresh()).store;
        let a = 0;
        let b = 0;
        const offA = queue.onAvailable(() => a++);
        queue.onAvailable(() => b++);
        offA();
        await queue.enqueue("p", "x");
        await waitFor(() => b > 0, "the remaining listener");
        expect(a).toBe(0);
      });

      if (opts.sharedAcrossInstances) {
        it("signals listeners on other instances", async () => {
          const { store, other } = await fresh();
          const second = await other();
          let signals = 0;
          second.queue.onAvailable(() => signals++);
          // The listener subscribes asynchronously; keep producing until it hears one.
          let n = 0;
          await waitFor(async () => {
            await store.queue.enqueue(`p${n++}`, "x");
            return signals > 0;
          }, "a signal from another instance");
        });
      }
    });

    describe("streams", () => {
      it("appends with increasing ids and ranges after a cursor", async () => {
        const { streams } = (await fresh()).store;
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push(await streams.append("s", `e${i}`));
        for (let i = 1; i < ids.length; i++) expect(cmpId(ids[i - 1]!, ids[i]!)).toBeLessThan(0);
        expect(ids.every((id) => /^\d+-\d+$/.test(id))).toBe(true);

        const all = await streams.range("s");
        expect(all).toEqual(ids.map((id, i) => ({ id, data: `e${i}` })));
        expect((await streams.range("s", { after: ids[1] })).map((e) => e.data)).toEqual([
          "e2",
          "e3",
          "e4",
        ]);
        expect((await streams.range("s", { after: ids[1], limit: 2 })).map((e) => e.data)).toEqual([
          "e2",
          "e3",
        ]);
        expect(await streams.range("s", { after: ids[4] })).toEqual([]);
        expect(await streams.range("missing")).toEqual([]);
        expect(await streams.length("s")).toBe(5);
        expect(await streams.length("missing")).toBe(0);
      });

      it("revRange returns newest first, before a cursor", async () => {
        const { streams } = (await fresh()).store;
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) ids.push(await streams.append("s", `e${i}`));
        expect((await streams.revRange("s")).map((e) => e.data)).toEqual(["e3", "e2", "e1", "e0"]);
        expect((await streams.revRange("s", { limit: 2 })).map((e) => e.data)).toEqual([
          "e3",
          "e2",
        ]);
        expect((await streams.revRange("s", { before: ids[2] })).map((e) => e.data)).toEqual([
          "e1",
          "e0",
        ]);
        expect(
          (await streams.revRange("s", { before: ids[3], limit: 1 })).map((e) => e.id),
        ).toEqual([ids[2]]);
      });

      it("rejects malformed cursors", async () => {
        const { streams } = (await fresh()).store;
        await expect(streams.range("s", { after: "nope" })).rejects.toThrow(/cursor/);
        await expect(streams.read("s", "1-x", { blockMs: 10 })).rejects.toThrow(/cursor/);
      });

      it("read returns at once when entries exist after the cursor", async () => {
        const { streams } = (await fresh()).store;
        const first = await streams.append("s", "a");
        await streams.append("s", "b");
        expect(
          (await streams.read("s", undefined, { blockMs: 60_000 })).map((e) => e.data),
        ).toEqual(["a", "b"]);
        expect((await streams.read("s", first, { blockMs: 60_000 })).map((e) => e.data)).toEqual([
          "b",
        ]);
        expect((await streams.read("s", first, { blockMs: 0 })).map((e) => e.data)).toEqual(["b"]);
        expect(
          (await streams.read("s", undefined, { blockMs: 60_000, limit: 1 })).map((e) => e.data),
        ).toEqual(["a"]);
      });

      it("read blocks until an append", async () => {
        const { store, other } = await fresh();
        const writer = await other();
        const last = await store.streams.append("s", "old");
        const reading = store.streams.read("s", last, { blockMs: 30_000 });
        await sleep(50);
        const id = await writer.streams.append("s", "new");
        expect(await reading).toEqual([{ id, data: "new" }]);

        // From the start of a stream that does not exist yet.
        const fromStart = store.streams.read("fresh", undefined, { blockMs: 30_000 });
        await sleep(50);
        const id2 = await writer.streams.append("fresh", "first");
        expect(await fromStart).toEqual([{ id: id2, data: "first" }]);
      });

      it("many blocked readers wake on one append", async () => {
        const { store, other } = await fresh();
        const writer = await other();
        const readers = Array.from({ length: 6 }, () =>
          store.streams.read("fan", undefined, { blockMs: 30_000 }),
        );
        await sleep(50);
        await writer.streams.append("fan", "hello");
        for (const r of await Promise.all(readers)) expect(r.map((e) => e.data)).toEqual(["hello"]);
      });

      it("a reader following a stream gets every entry once and in order, however the appends are batched", async () => {
        const { store, other } = await fresh();
        const writer = await other();
        let cursor = await store.streams.append("follow", "start");
        const seen: string[] = [];
        const following = (async () => {
          while (seen.length < 9) {
            for (const e of await store.streams.read("follow", cursor, { blockMs: 30_000 })) {
              seen.push(e.data);
              cursor = e.id;
            }
          }
        })();
        await sleep(20);
        // Three in one event-loop turn (one commit on SQLite), three one by one, three mixed.
        await Promise.all([0, 1, 2].map((i) => writer.streams.append("follow", `a${i}`)));
        for (let i = 0; i < 3; i++) {
          await writer.streams.append("follow", `b${i}`);
          await sleep(5);
        }
        await writer.streams.append("follow", "c0");
        await Promise.all([
          store.streams.append("follow", "c1"),
          writer.streams.append("follow", "c2"),
        ]);
        await following;
        // c1 and c2 are appended at once from two instances: either may be first in the
        // stream. The follower sees the stream's own order, each entry once.
        const order = (await store.streams.range("follow")).slice(1).map((e) => e.data);
        expect(seen).toEqual(order);
        expect(seen.slice(0, 7)).toEqual(["a0", "a1", "a2", "b0", "b1", "b2", "c0"]);
        expect([...seen.slice(7)].sort()).toEqual(["c1", "c2"]);
      });

      it("readers at different cursors each get what follows their own cursor", async () => {
        const { store, other } = await fresh();
        const writer = await other();
        const first = await store.streams.append("two", "e0");
        const second = await store.streams.append("two", "e1");
        // Caught up, so it waits; the other is one entry behind and gets it at once.
        const atTail = store.streams.read("two", second, { blockMs: 30_000 });
        expect(
          (await store.streams.read("two", first, { blockMs: 30_000 })).map((e) => e.data),
        ).toEqual(["e1"]);
        const behind = store.streams.read("two", second, { blockMs: 30_000 });
        await sleep(20);
        await writer.streams.append("two", "e2");
        expect((await atTail).map((e) => e.data)).toEqual(["e2"]);
        expect((await behind).map((e) => e.data)).toEqual(["e2"]);
        // A cursor behind the tail after the append: the rest, not only the newest.
        expect(
          (await store.streams.read("two", first, { blockMs: 30_000 })).map((e) => e.data),
        ).toEqual(["e1", "e2"]);
      });

      it("a reader waiting on a deleted stream gets the entries of the stream written again", async () => {
        const { store, other } = await fresh();
        const writer = await other();
        const last = await store.streams.append("gone", "old");
        expect(await store.streams.read("gone", last, { blockMs: 10 })).toEqual([]);
        const waiting = store.streams.read("gone", last, { blockMs: 30_000 });
        await sleep(20);
        await writer.streams.delete("gone");
        await sleep(5);
        const id = await writer.streams.append("gone", "new");
        expect(await waiting).toEqual([{ id, data: "new" }]);
        // And a reader caught up with the old stream is not told the new one is empty.
        expect((await store.streams.read("gone", last, { blockMs: 0 })).map((e) => e.data)).toEqual(
          ["new"],
        );
      });

      it("a reader behind the tail gets only the entries still there after a trim or a removal", async () => {
        const { streams } = (await fresh()).store;
        const e0 = await streams.append("pruned", "e0");
        // Caught up at e0: from here on the stream is followed.
        expect(await streams.read("pruned", e0, { blockMs: 10 })).toEqual([]);
        await streams.append("pruned", "e1");
        await streams.append("pruned", "e2");
        await streams.append("pruned", "e3", { maxLen: 2 });
        expect((await streams.read("pruned", e0, { blockMs: 0 })).map((e) => e.data)).toEqual([
          "e2",
          "e3",
        ]);
        const [, e3] = (await streams.range("pruned")).map((e) => e.id);
        const e4 = await streams.append("pruned", "e4");
        await streams.remove("pruned", [e3!]);
        expect((await streams.read("pruned", e0, { blockMs: 0 })).map((e) => e.data)).toEqual([
          "e2",
          "e4",
        ]);
        expect(await streams.read("pruned", e4, { blockMs: 10 })).toEqual([]);
      });

      it("a followed stream that expired reads as empty", async () => {
        const { streams } = (await fresh()).store;
        const first = await streams.append("brief", "a", { ttlMs: 150 });
        expect(await streams.read("brief", first, { blockMs: 10 })).toEqual([]);
        await streams.append("brief", "b");
        expect((await streams.read("brief", first, { blockMs: 0 })).map((e) => e.data)).toEqual([
          "b",
        ]);
        await sleep(250);
        expect(await streams.read("brief", first, { blockMs: 0 })).toEqual([]);
      });

      it("read returns [] on timeout", async () => {
        const { streams } = (await fresh()).store;
        const last = await streams.append("s", "x");
        expect(await streams.read("s", last, { blockMs: 30 })).toEqual([]);
        expect(await streams.read("empty", undefined, { blockMs: 30 })).toEqual([]);
      });

      it("read returns [] when aborted, and the store keeps serving reads", async () => {
        const { streams } = (await fresh()).store;
        const ac = new AbortController();
        const reading = streams.read("s", undefined, { blockMs: 60_000, signal: ac.signal });
        await sleep(50);
        ac.abort();
        expect(await reading).toEqual([]);

        const pre = new AbortController();
        pre.abort();
        expect(await streams.read("s", undefined, { blockMs: 60_000, signal: pre.signal })).toEqual(
          [],
        );

        const next = streams.read("s", undefined, { blockMs: 30_000 });
        await sleep(20);
        await streams.append("s", "after-abort");
        expect((await next).map((e) => e.data)).toEqual(["after-abort"]);
      });

      it("trims to maxLen, dropping the oldest", async () => {
        const { streams } = (await fresh()).store;
        const ids: string[] = [];
        for (let i = 0; i < 6; i++) ids.push(await streams.append("s", `e${i}`, { maxLen: 3 }));
        expect(await streams.length("s")).toBe(3);
        expect((await streams.range("s")).map((e) => e.data)).toEqual(["e3", "e4", "e5"]);
        // Ids keep growing after a trim.
        const next = await streams.append("s", "e6", { maxLen: 3 });
        expect(cmpId(ids[5]!, next)).toBeLessThan(0);
      });

      it("trims a long stream exactly, across removals, deletes and maxLen changes", async () => {
        // Long enough for the SQLite store to track the length instead of counting.
        const { streams } = (await fresh()).store;
        const data = (from: number, to: number) =>
          Array.from({ length: to - from }, (_, i) => `e${from + i}`);
        for (let i = 0; i < 400; i++) await streams.append("s", `e${i}`, { maxLen: 300 });
        expect(await streams.length("s")).toBe(300);
        expect((await streams.range("s")).map((e) => e.data)).toEqual(data(100, 400));
        const [oldest] = await streams.range("s", { limit: 1 });
        expect(await streams.remove("s", [oldest!.id])).toBe(1);
        await streams.append("s", "e400", { maxLen: 300 });
        expect((await streams.range("s")).map((e) => e.data)).toEqual(data(101, 401));
        await streams.append("s", "e401", { maxLen: 280 });
        expect((await streams.range("s")).map((e) => e.data)).toEqual(data(122, 402));
        await streams.delete("s");
        for (let i = 0; i < 5; i++) await streams.append("s", `n${i}`, { maxLen: 300 });
        expect(await streams.length("s")).toBe(5);
      });

      it("expires a stream after its ttl", async () => {
        const { streams } = (await fresh()).store;
        await streams.append("s", "a", { ttlMs: 30 });
        await streams.append("s", "b");
        await streams.append("keep", "k", { ttlMs: 60_000 });
        await sleep(80);
        expect(await streams.length("s")).toBe(0);
        expect(await streams.range("s")).toEqual([]);
        expect(await streams.revRange("s")).toEqual([]);
        expect(await streams.length("keep")).toBe(1);
        // Appending again starts a new stream.
        await streams.append("s", "c");
        expect((await streams.range("s")).map((e) => e.data)).toEqual(["c"]);
      });

      it("deletes a stream", async () => {
        const { streams } = (await fresh()).store;
        await streams.append("s", "a");
        await streams.append("s", "b");
        await streams.delete("s");
        expect(await streams.length("s")).toBe(0);
        expect(await streams.range("s")).toEqual([]);
        await streams.delete("never-existed");
      });

      it("removes single entries and ignores ids that are not there", async () => {
        const { streams } = (await fresh()).store;
        const a = await streams.append("s", "a");
        const b = await streams.append("s", "b");
        const c = await streams.append("s", "c");
        expect(await streams.remove("s", [a, c, "1-0"])).toBe(2);
        expect(await streams.range("s")).toEqual([{ id: b, data: "b" }]);
        expect(await streams.remove("s", [])).toBe(0);
        expect(await streams.remove("never-existed", [b])).toBe(0);
      });
    });

    describe("locks", () => {
      it("acquires, extends and releases with tokens", async () => {
        const { locks } = (await fresh()).store;
        const token = await locks.acquire("cron", "gw-1", 60_000);
        expect(token).toEqual(expect.any(String));
        expect(await locks.holder("cron")).toBe("gw-1");
        expect(await locks.acquire("cron", "gw-2", 60_000)).toBeNull();
        expect(await locks.acquire("cron", "gw-1", 60_000)).toBeNull(); // not re-entrant
        expect(await locks.extend("cron", "wrong", 60_000)).toBe(false);
        expect(await locks.extend("cron", token!, 60_000)).toBe(true);
        expect(await locks.release("cron", "wrong")).toBe(false);
        expect(await locks.holder("cron")).toBe("gw-1");
        expect(await locks.release("cron", token!)).toBe(true);
        expect(await locks.holder("cron")).toBeNull();
        expect(await locks.release("cron", token!)).toBe(false);
        expect(await locks.holder("never")).toBeNull();
      });

      it("expires, letting another owner in and locking the old token out", async () => {
        const { locks } = (await fresh()).store;
        const old = await locks.acquire("job", "gw-1", 20);
        await sleep(60);
        expect(await locks.holder("job")).toBeNull();
        expect(await locks.extend("job", old!, 60_000)).toBe(false);
        const fresh2 = await locks.acquire("job", "gw-2", 60_000);
        expect(fresh2).not.toBeNull();
        expect(await locks.release("job", old!)).toBe(false);
        expect(await locks.holder("job")).toBe("gw-2");
      });

      it("lets exactly one of many racers acquire", async () => {
        const { store, other } = await fresh();
        const second = await other();
        const tokens = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            (i % 2 ? store : second).locks.acquire("race", `gw-${i}`, 60_000),
          ),
        );
        expect(tokens.filter((t) => t !== null)).toHaveLength(1);
      });
    });

    describe("pubsub", () => {
      it("delivers to subscribers in order and stops after unsubscribe", async () => {
        const { pubsub } = (await fresh()).store;
        const got: string[] = [];
        const unsubscribe = await pubsub.subscribe("ch", (m) => got.push(m));
        await pubsub.publish("ch", "1");
        await pubsub.publish("ch", "2");
        await pubsub.publish("other", "x");
        await waitFor(() => got.length === 2, "two messages");
        expect(got).toEqual(["1", "2"]);

        await unsubscribe();
        const later: string[] = [];
        const off = await pubsub.subscribe("ch", (m) => later.push(m));
        await pubsub.publish("ch", "3");
        // Same channel, same connection: once the new listener has it, the old one would too.
        await waitFor(() => later.length === 1, "the message to the new listener");
        expect(got).toEqual(["1", "2"]);
        await off();
      });

      it("fans out to several subscribers of one channel", async () => {
        const { pubsub } = (await fresh()).store;
        const a: string[] = [];
        const b: string[] = [];
        const offA = await pubsub.subscribe("ch", (m) => a.push(m));
        const offB = await pubsub.subscribe("ch", (m) => b.push(m));
        await pubsub.publish("ch", "hi");
        await waitFor(() => a.length === 1 && b.length === 1, "both listeners");
        await offA();
        await pubsub.publish("ch", "again");
        await waitFor(() => b.length === 2, "the remaining listener");
        expect(a).toEqual(["hi"]);
        await offB();
      });

      it("keeps delivering when one listener throws", async () => {
        const { pubsub } = (await fresh()).store;
        const got: string[] = [];
        await pubsub.subscribe("ch", () => {
          throw new Error("listener bug");
        });
        await pubsub.subscribe("ch", (m) => got.push(m));
        await pubsub.publish("ch", "ok");
        await waitFor(() => got.length === 1, "the healthy listener");
      });

      if (opts.sharedAcrossInstances) {
        it("delivers across instances", async () => {
          const { store, other } = await fresh();
          const second = await other();
          const got: string[] = [];
          await second.pubsub.subscribe("ch", (m) => got.push(m));
          await store.pubsub.publish("ch", "from-a");
          await waitFor(() => got.length === 1, "the message on the other instance");
          expect(got).toEqual(["from-a"]);
        });
      }
    });

    describe("close", () => {
      it("ends blocked reads and rejects later calls", async () => {
        const { store } = await fresh();
        const reading = store.streams.read("s", undefined, { blockMs: 60_000 });
        store.queue.onAvailable(() => {});
        await sleep(30);
        await store.close();
        expect(await reading).toEqual([]);
        await expect(store.kv.get("k")).rejects.toThrow();
        await store.close(); // idempotent
      });

      it("ends a blocking read that was still starting when the store closed", async () => {
        const { store } = await fresh();
        const reading = store.streams.read("s", undefined, { blockMs: 60_000 });
        await store.close();
        expect(await reading).toEqual([]);
        await expect(store.streams.read("s", undefined, { blockMs: 60_000 })).rejects.toThrow(
          /closed/,
        );
      });
    });
  });
}
