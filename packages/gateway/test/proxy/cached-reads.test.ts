import { randomBytes } from "node:crypto";
import { once } from "node:events";
import tls from "node:tls";
import { createLogger } from "@lobu/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { UserSettingsStore } from "../../src/people/user-settings.ts";
import { PlaceholderRegistry } from "../../src/secrets/placeholders.ts";
import { type SecretRef, SecretStore, secretKey } from "../../src/secrets/store.ts";
import { createStore, type KeyValue, type Store } from "../../src/store/index.ts";
import { generationKey, ReadCachingKv, readSnapshot } from "../../src/store/read-cache.ts";
import { ReadMemo } from "../../src/util/read-memo.ts";
import { connect, createWorld, httpsViaProxy, TRUSTING, viaProxy, type World } from "./fixture.ts";

/**
 * The proxy memoizes decoded bindings and decrypted secrets (util/read-memo.ts)
 * so a request does not parse and decrypt again what it read last time. These
 * tests make sure the memo is never a cache of decisions: a revoked placeholder,
 * a deleted or rotated secret, or a narrowed binding takes effect on the very
 * next request, also when the change is made by another gateway (another
 * registry and store over the same storage, with memos of their own).
 *
 * Reads of bindings, secrets and grants are also cached (store/read-cache.ts)
 * until the next write: the same cases must hold with the cache warm, within
 * one gateway on SQLite and across two gateways on one Redis.
 */

let w: World;
/** Another gateway on the same storage. */
let otherPlaceholders: PlaceholderRegistry;
let otherSecrets: SecretStore;
const ref: SecretRef = { name: "cached", scope: { kind: "agent", agentId: "helper" } };
const FIRST = "ghp_cachedFirstValue0123456789abcdef";
const SECOND = "ghp_cachedSecondValue0123456789abcde";

beforeAll(async () => {
  w = await createWorld();
  otherPlaceholders = new PlaceholderRegistry(w.store.kv);
  // Same master key: the other gateway of one installation.
  otherSecrets = new SecretStore(w.store.kv, w.masterKey);
});
afterAll(() => w.close());
beforeEach(() => {
  w.audit.length = 0;
  w.http.received.length = 0;
  w.https.received.length = 0;
});

/** The authorization header the upstream got for `Bearer placeholder` sent through the proxy at `port`. */
async function plainSwap(placeholder: string, port = w.proxyPort): Promise<string | undefined> {
  w.http.received.length = 0;
  const res = await viaProxy(port, `http://api.allowed.test:${w.http.port}/x`, {
    headers: { authorization: `Bearer ${placeholder}` },
  });
  expect(res.status).toBe(200);
  return w.http.received[0]!.headers.authorization;
}

async function tlsSwap(placeholder: string): Promise<string | undefined> {
  w.https.received.length = 0;
  const res = await httpsViaProxy(w.proxyPort, "api.allowed.test", w.https.port, {
    ca: w.ca.certPem,
    headers: { authorization: `Bearer ${placeholder}` },
  });
  expect(res.status).toBe(200);
  return w.https.received[0]!.headers.authorization;
}

describe("memoized reads on the proxy's hot path", () => {
  it("a placeholder revoked by another gateway stops being swapped on the next request", async () => {
    await w.secrets.set(ref, FIRST);
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    for (let i = 0; i < 3; i++) expect(await plainSwap(p)).toBe(`Bearer ${FIRST}`);
    expect(await tlsSwap(p)).toBe(`Bearer ${FIRST}`);
    expect(await otherPlaceholders.revoke(p)).toBe(true);
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
    expect(await w.placeholders.lookup(p)).toBeNull();
    expect(w.audit.at(-1)).toMatchObject({
      unswapped: 1,
      notes: ["unknown or revoked placeholder"],
    });
  });

  it("a rotated secret is sent with its new value at once, a deleted one not at all", async () => {
    await w.secrets.set(ref, FIRST);
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    expect(await tlsSwap(p)).toBe(`Bearer ${FIRST}`);
    await otherSecrets.rotate(ref, SECOND);
    expect(await tlsSwap(p)).toBe(`Bearer ${SECOND}`);
    expect(await plainSwap(p)).toBe(`Bearer ${SECOND}`);
    expect(await otherSecrets.delete(ref)).toBe(true);
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
    expect(await w.secrets.get(ref)).toBeNull();
    await w.placeholders.revoke(p);
  });

  it("a binding narrowed by another gateway applies to the next request", async () => {
    await w.secrets.set(ref, FIRST);
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    expect(await plainSwap(p)).toBe(`Bearer ${FIRST}`);
    // Same placeholder, now bound elsewhere only.
    expect(
      await otherPlaceholders.issue({
        sandboxId: TRUSTING,
        secret: ref,
        hosts: ["elsewhere.test"],
      }),
    ).toBe(p);
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
    // And only headers: a URL swap is refused at once after re-issuing with locations narrowed.
    await otherPlaceholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
      locations: ["body"],
    });
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
    await w.placeholders.revoke(p);
  });
});

describe("TLS session resumption in intercepted tunnels", () => {
  it("a client offering its ticket resumes the session on the next tunnel to the host", async () => {
    await w.secrets.set(ref, FIRST);
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    let session: Buffer | undefined;
    const reused: boolean[] = [];
    for (let i = 0; i < 2; i++) {
      const tunnel = await connect(w.proxyPort, `api.allowed.test:${w.https.port}`);
      expect(tunnel.status).toBe(200);
      const s = tls.connect({
        socket: tunnel.socket,
        servername: "api.allowed.test",
        ca: w.ca.certPem,
        ...(session ? { session } : {}),
      });
      s.on("session", (t: Buffer) => {
        session = t;
      });
      await once(s, "secureConnect");
      reused.push(s.isSessionReused());
      // TLS 1.3 tickets arrive after the handshake: ask for something so one is sent.
      s.write(
        `GET / HTTP/1.1\r\nHost: api.allowed.test\r\nAuthorization: Bearer ${p}\r\nConnection: close\r\n\r\n`,
      );
      s.resume();
      await once(s, "close");
    }
    expect(reused).toEqual([false, true]);
    await w.placeholders.revoke(p);
  });
});

describe("SecretStore decrypt memo", () => {
  it("never answers a ciphertext copied under another name from the memo of the original", async () => {
    const victim: SecretRef = { name: "victim", scope: { kind: "agent", agentId: "a" } };
    const thief: SecretRef = { name: "thief", scope: { kind: "agent", agentId: "b" } };
    await w.secrets.set(victim, FIRST);
    await w.secrets.set(thief, "thief-own-value-123456");
    expect(await w.secrets.get(victim)).toBe(FIRST);
    // Someone with write access to the storage copies the sealed record over.
    const raw = (await w.store.kv.get(secretKey(victim)))!;
    await w.store.kv.set(secretKey(thief), raw);
    await expect(w.secrets.get(thief)).rejects.toMatchObject({ code: "secret_undecryptable" });
  });

  it("reads a value written by another store instance, and forgets a deleted one", async () => {
    const r: SecretRef = { name: "shared", scope: { kind: "installation" } };
    await w.secrets.set(r, FIRST);
    expect(await otherSecrets.get(r)).toBe(FIRST);
    await w.secrets.set(r, SECOND);
    expect(await otherSecrets.get(r)).toBe(SECOND);
    await w.secrets.delete(r);
    expect(await otherSecrets.get(r)).toBeNull();
  });
});

describe("UserSettingsStore parse memo (a person's granted domains)", () => {
  it("a domain removed by another gateway is gone from the next read; shared reads are frozen", async () => {
    const log = createLogger("test", { level: "silent" });
    const here = new UserSettingsStore(w.store.kv, log);
    const there = new UserSettingsStore(w.store.kv, log);
    await there.update("helper", "slack:T1:U1", (s) => ({ ...s, domains: ["api.granted.test"] }));
    expect((await here.get("helper", "slack:T1:U1")).domains).toEqual(["api.granted.test"]);
    const again = await here.get("helper", "slack:T1:U1");
    expect(() => (again.domains as string[]).push("evil.test")).toThrow(TypeError);
    await there.update("helper", "slack:T1:U1", (s) => ({ ...s, domains: [] }));
    expect((await here.get("helper", "slack:T1:U1")).domains).toEqual([]);
    await w.store.kv.del("usettings:helper:slack:T1:U1");
    expect((await here.get("helper", "slack:T1:U1")).domains).toEqual([]);
  });
});

describe("ReadMemo", () => {
  it("decodes again when the text or the key differs, and stays bounded", () => {
    const memo = new ReadMemo<string>(2);
    let calls = 0;
    const decode = (raw: string) => {
      calls++;
      return raw.toUpperCase();
    };
    expect(memo.get("k", "a", decode)).toBe("A");
    expect(memo.get("k", "a", decode)).toBe("A");
    expect(calls).toBe(1);
    expect(memo.get("other", "a", decode)).toBe("A");
    expect(memo.get("k", "b", decode)).toBe("B");
    expect(calls).toBe(3);
    expect(memo.size).toBe(2);
  });

  it("does not remember a decode that threw", () => {
    const memo = new ReadMemo<string>();
    let fail = true;
    const decode = (raw: string) => {
      if (fail) throw new Error("bad");
      return raw;
    };
    expect(() => memo.get("k", "x", decode)).toThrow("bad");
    fail = false;
    expect(memo.get("k", "x", decode)).toBe("x");
  });
});

/**
 * Whether the proxy let granted.test through the domain policy. It resolves to
 * loopback, which a person's grant never opens (only operator ranges do), so
 * the request is refused either way; the refusal says which check stopped it.
 */
async function grantedTo(port: number): Promise<boolean> {
  const res = await viaProxy(port, `http://granted.test:${w.http.port}/x`);
  expect(res.status).toBe(403);
  const reason = w.audit.at(-1)!.reason;
  return !/not (in the )?allow/i.test(reason) && /private|loopback|address/i.test(reason);
}

describe("cached reads (store/read-cache.ts) on the proxy's path", () => {
  it("a warm cache on SQLite: revocation, rotation, deletion and narrowing apply to the next request", async () => {
    await w.secrets.set(ref, FIRST);
    const p = await w.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    // Warm: the same reads served from memory several times.
    for (let i = 0; i < 3; i++) expect(await plainSwap(p)).toBe(`Bearer ${FIRST}`);
    await w.secrets.rotate(ref, SECOND);
    expect(await plainSwap(p)).toBe(`Bearer ${SECOND}`);
    expect(await tlsSwap(p)).toBe(`Bearer ${SECOND}`);
    await w.placeholders.issue({ sandboxId: TRUSTING, secret: ref, hosts: ["elsewhere.test"] });
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
    await w.placeholders.issue({ sandboxId: TRUSTING, secret: ref, hosts: ["api.allowed.test"] });
    expect(await tlsSwap(p)).toBe(`Bearer ${SECOND}`);
    await w.secrets.delete(ref);
    expect(await tlsSwap(p)).toBe(`Bearer ${p}`);
    await w.secrets.set(ref, FIRST);
    expect(await plainSwap(p)).toBe(`Bearer ${FIRST}`);
    // A write straight to the storage through the store's kv is a write too.
    await w.store.kv.del(`ph:${p}`);
    expect(await plainSwap(p)).toBe(`Bearer ${p}`);
  });

  it("a person's grant removed is refused on the next request (policy read from cached settings)", async () => {
    const log = createLogger("test", { level: "silent" });
    const settings = new UserSettingsStore(w.store.kv, log);
    await settings.update("helper", "slack:T1:U9", (s) => ({ ...s, domains: ["granted.test"] }));
    w.dns.set("granted.test", [{ address: "127.0.0.1", family: 4 }]);
    const proxy = await w.startProxy({
      identity: { kind: "sandbox", sandboxId: "sb_granted" },
      policyFor: async (id) =>
        id === "sb_granted"
          ? {
              agentId: "helper",
              allow: [],
              deny: [],
              allowPrivateRanges: ["127.0.0.1/32"],
              userAllow: [...(await settings.get("helper", "slack:T1:U9")).domains],
            }
          : null,
    });
    for (let i = 0; i < 3; i++) expect(await grantedTo(proxy.port)).toBe(true);
    await settings.update("helper", "slack:T1:U9", (s) => ({ ...s, domains: [] }));
    expect(await grantedTo(proxy.port)).toBe(false);
    await proxy.server.shutdown();
  });
});

describe("two gateways on one Redis: changes by one apply to the other's next request", () => {
  const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  let one: Store;
  let two: Store;
  beforeAll(async () => {
    const prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
    one = await createStore({ driver: "redis", url, prefix });
    two = await createStore({ driver: "redis", url, prefix });
  });
  afterAll(async () => {
    for (const key of ["ph:", "phs:", "secret:", "usettings:", "gen:cached-reads:"]) {
      for (const e of await one.kv.list(key, { limit: 10_000 })) await one.kv.del(e.key);
    }
    await one.close();
    await two.close();
  });

  it("revocation, rotation, deletion and a removed grant, each made on the other gateway", async () => {
    const log = createLogger("test", { level: "silent" });
    // Gateway one makes the changes; gateway two serves the sandbox's requests.
    const admin = {
      secrets: new SecretStore(one.kv, w.masterKey),
      placeholders: new PlaceholderRegistry(one.kv),
      settings: new UserSettingsStore(one.kv, log),
    };
    const settings = new UserSettingsStore(two.kv, log);
    w.dns.set("granted.test", [{ address: "127.0.0.1", family: 4 }]);
    const proxy = await w.startProxy({
      placeholders: new PlaceholderRegistry(two.kv),
      secrets: new SecretStore(two.kv, w.masterKey),
      policyFor: async (id) =>
        id === TRUSTING
          ? {
              agentId: "helper",
              allow: ["*.allowed.test"],
              deny: [],
              allowPrivateRanges: ["127.0.0.1/32"],
              userAllow: [...(await settings.get("helper", "slack:T1:U1")).domains],
            }
          : null,
    });
    const swap = (placeholder: string) => plainSwap(placeholder, proxy.port);
    await admin.secrets.set(ref, FIRST);
    const p = await admin.placeholders.issue({
      sandboxId: TRUSTING,
      secret: ref,
      hosts: ["api.allowed.test"],
    });
    for (let i = 0; i < 3; i++) expect(await swap(p)).toBe(`Bearer ${FIRST}`);
    await admin.secrets.rotate(ref, SECOND);
    expect(await swap(p)).toBe(`Bearer ${SECOND}`);
    await admin.secrets.delete(ref);
    expect(await swap(p)).toBe(`Bearer ${p}`);
    await admin.secrets.set(ref, FIRST);
    expect(await swap(p)).toBe(`Bearer ${FIRST}`);
    expect(await admin.placeholders.revoke(p)).toBe(true);
    expect(await swap(p)).toBe(`Bearer ${p}`);

    await admin.settings.update("helper", "slack:T1:U1", (s) => ({
      ...s,
      domains: ["granted.test"],
    }));
    for (let i = 0; i < 2; i++) expect(await grantedTo(proxy.port)).toBe(true);
    await admin.settings.update("helper", "slack:T1:U1", (s) => ({ ...s, domains: [] }));
    expect(await grantedTo(proxy.port)).toBe(false);
    await proxy.server.shutdown();
  });
});

describe("ReadCachingKv", () => {
  /** The real store's kv, counting reads that reach it (`calls`: one per get, getMany or list). */
  function counting(inner: KeyValue): { kv: KeyValue; reads: string[]; calls: string[][] } {
    const reads: string[] = [];
    const calls: string[][] = [];
    const kv = new Proxy(inner, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if ((prop === "get" || prop === "list") && typeof v === "function") {
          return (key: string, ...rest: unknown[]) => {
            reads.push(key);
            calls.push([key]);
            return v.call(target, key, ...rest);
          };
        }
        if (prop === "getMany" && typeof v === "function") {
          return (keys: string[]) => {
            reads.push(...keys);
            calls.push(keys);
            return v.call(target, keys);
          };
        }
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    return { kv, reads, calls };
  }

  it("serves a watched key from memory until a write, and never caches a key written with a TTL", async () => {
    const { kv: inner, reads } = counting(w.store.kv);
    const kv = new ReadCachingKv(inner, { shared: false });
    kv.watch("rc:");
    await kv.set("rc:a", "1");
    expect(await kv.get("rc:a")).toBe("1");
    expect(await kv.get("rc:a")).toBe("1");
    expect(reads.filter((k) => k === "rc:a")).toHaveLength(1);
    await kv.set("rc:a", "2");
    expect(await kv.get("rc:a")).toBe("2");
    await kv.del("rc:a");
    expect(await kv.get("rc:a")).toBeNull();
    await kv.set("rc:t", "x", { ttlMs: 60_000 });
    await kv.get("rc:t");
    await kv.get("rc:t");
    expect(reads.filter((k) => k === "rc:t")).toHaveLength(2);
    // Unwatched keys are never cached.
    await kv.get("other:k");
    await kv.get("other:k");
    expect(reads.filter((k) => k === "other:k")).toHaveLength(2);
  });

  it("a read that began before a write does not put its older value in the cache", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow: KeyValue = new Proxy(w.store.kv, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop === "get") {
          return async (key: string) => {
            const value = await target.get(key);
            if (key === "rc:race") await gate;
            return value;
          };
        }
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const kv = new ReadCachingKv(slow, { shared: false });
    kv.watch("rc:");
    await kv.set("rc:race", "old");
    const pending = kv.get("rc:race");
    await new Promise((r) => setTimeout(r, 10));
    await kv.set("rc:race", "new");
    release();
    expect(await pending).toBe("old");
    expect(await kv.get("rc:race")).toBe("new");
  });

  it("a batch read keeps the values it had from the cache when a write empties the cache meanwhile", async () => {
    // Under load (a secret resolved for a new person while other turns write bindings):
    // the cached installation key must not read as missing because the cache moved on.
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let entered!: () => void;
    const inside = new Promise<void>((r) => {
      entered = r;
    });
    const slow: KeyValue = new Proxy(w.store.kv, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop === "getMany") {
          return async (keys: string[]) => {
            const values = await target.getMany(keys);
            if (keys.includes("rc:batch-miss")) {
              entered();
              await gate;
            }
            return values;
          };
        }
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const kv = new ReadCachingKv(slow, { shared: false });
    kv.watch("rc:");
    await kv.set("rc:batch-hit", "cached");
    expect(await kv.get("rc:batch-hit")).toBe("cached");
    const pending = kv.getMany(["rc:batch-miss", "rc:batch-hit"]);
    await inside;
    // Another writer moves the generation on, and another reader empties the cache.
    await kv.set("rc:batch-other", "x");
    expect(await kv.get("rc:batch-other")).toBe("x");
    release();
    expect(await pending).toEqual([null, "cached"]);
  });

  it("a write under one watched prefix leaves the other prefixes' cached reads in place", async () => {
    // A turn writes placeholder bindings several times; that must not send every
    // secret, setting and agent read back to the store.
    const { kv: inner, reads } = counting(w.store.kv);
    const kv = new ReadCachingKv(inner, { shared: false });
    kv.watch("rp1:");
    kv.watch("rp2:");
    await kv.set("rp1:a", "1");
    expect(await kv.get("rp1:a")).toBe("1");
    expect(await kv.list("rp1:")).toEqual([{ key: "rp1:a", value: "1" }]);
    await kv.set("rp2:b", "2");
    await kv.del("rp2:b");
    expect(await kv.get("rp1:a")).toBe("1");
    expect(await kv.list("rp1:")).toEqual([{ key: "rp1:a", value: "1" }]);
    expect(reads.filter((k) => k.startsWith("rp1:"))).toEqual(["rp1:a", "rp1:"]);
    // A write under its own prefix is seen by the very next read and list.
    await kv.set("rp1:c", "3");
    expect(await kv.get("rp1:a")).toBe("1");
    expect(await kv.get("rp1:c")).toBe("3");
    expect(await kv.list("rp1:")).toEqual([
      { key: "rp1:a", value: "1" },
      { key: "rp1:c", value: "3" },
    ]);
    expect(await kv.getMany(["rp1:a", "rp1:c", "rp2:b", "other:z"])).toEqual([
      "1",
      "3",
      null,
      null,
    ]);
    for (const k of ["rp1:a", "rp1:c"]) await kv.del(k);
    expect(await kv.getMany(["rp1:a", "rp1:c"])).toEqual([null, null]);
    expect(await kv.list("rp1:")).toEqual([]);
  });

  it("nested prefixes: a write under the inner one is seen by reads and lists of the outer", async () => {
    const kv = new ReadCachingKv(w.store.kv, { shared: false });
    kv.watch("rn:");
    kv.watch("rn:in:");
    await kv.set("rn:a", "1");
    expect(await kv.list("rn:")).toEqual([{ key: "rn:a", value: "1" }]);
    expect(await kv.get("rn:in:x")).toBeNull();
    await kv.set("rn:in:x", "2");
    expect(await kv.get("rn:in:x")).toBe("2");
    expect(await kv.list("rn:")).toEqual([
      { key: "rn:a", value: "1" },
      { key: "rn:in:x", value: "2" },
    ]);
    await kv.del("rn:a");
    expect(await kv.list("rn:in:")).toEqual([{ key: "rn:in:x", value: "2" }]);
    expect(await kv.list("rn:")).toEqual([{ key: "rn:in:x", value: "2" }]);
    await kv.del("rn:in:x");
  });

  it("a key written with a TTL keeps its own prefix's lists uncached, not the others'", async () => {
    const { kv: inner, reads } = counting(w.store.kv);
    const kv = new ReadCachingKv(inner, { shared: false });
    kv.watch("rv1:");
    kv.watch("rv2:");
    await kv.set("rv1:t", "x", { ttlMs: 60_000 });
    await kv.set("rv2:k", "y");
    for (let i = 0; i < 2; i++) {
      expect(await kv.list("rv1:")).toEqual([{ key: "rv1:t", value: "x" }]);
      expect(await kv.list("rv2:")).toEqual([{ key: "rv2:k", value: "y" }]);
    }
    expect(reads.filter((k) => k === "rv1:")).toHaveLength(2);
    expect(reads.filter((k) => k === "rv2:")).toHaveLength(1);
    for (const k of ["rv1:t", "rv2:k"]) await kv.del(k);
  });

  it("on Redis, a request reads every prefix's counter at once, and a write on another gateway invalidates only its prefix", async () => {
    const prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
    const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    const a = await createStore({ driver: "redis", url, prefix });
    const b = await createStore({ driver: "redis", url, prefix });
    try {
      const { kv: inner, reads, calls } = counting((b as unknown as { rawKv: KeyValue }).rawKv);
      const kv = new ReadCachingKv(inner, { shared: true });
      for (const p of ["rq1:", "rq2:"]) {
        kv.watch(p);
        (a.kv as ReadCachingKv).watch(p);
      }
      await a.kv.set("rq1:x", "1");
      await a.kv.set("rq2:y", "2");
      const both = () => readSnapshot(async () => [await kv.get("rq1:x"), await kv.get("rq2:y")]);
      expect(await both()).toEqual(["1", "2"]);
      calls.length = 0;
      reads.length = 0;
      expect(await both()).toEqual(["1", "2"]);
      // One read of both counters, no value read.
      expect(calls).toEqual([[generationKey("rq1:"), generationKey("rq2:")]]);
      await a.kv.set("rq1:x", "changed");
      reads.length = 0;
      expect(await both()).toEqual(["changed", "2"]);
      expect(reads.filter((k) => k.startsWith("rq"))).toEqual(["rq1:x"]);
      for (const k of ["rq1:x", "rq2:y", generationKey("rq1:"), generationKey("rq2:")]) {
        await a.kv.del(k);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("on Redis, one request's reads share one generation GET, and another gateway's write is seen", async () => {
    const prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
    const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    const a = await createStore({ driver: "redis", url, prefix });
    const b = await createStore({ driver: "redis", url, prefix });
    try {
      const { kv: inner, reads } = counting((b as unknown as { rawKv: KeyValue }).rawKv);
      const kv = new ReadCachingKv(inner, { shared: true });
      kv.watch("rc:");
      (a.kv as ReadCachingKv).watch("rc:");
      await a.kv.set("rc:x", "1");
      await a.kv.set("rc:y", "2");
      await readSnapshot(async () => {
        expect(await kv.get("rc:x")).toBe("1");
        expect(await kv.get("rc:y")).toBe("2");
        expect(await kv.get("rc:x")).toBe("1");
      });
      expect(reads.filter((k) => k === generationKey("rc:"))).toHaveLength(1);
      await a.kv.set("rc:x", "changed");
      expect(await kv.get("rc:x")).toBe("changed");
      for (const k of ["rc:x", "rc:y", generationKey("rc:")]) await a.kv.del(k);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
