import { AsyncLocalStorage } from "node:async_hooks";
import type { KeyValue, SetOptions, UpdateOptions } from "./port.ts";

/**
 * Reads of hot, rarely written keys (placeholder bindings, secrets, people's
 * grants: what the egress proxy reads on every request) answered from memory,
 * without ever serving a value older than the last completed write:
 *
 * - Every write to a watched key through this wrapper bumps a generation after
 *   the write (in this process at once; with a shared store, also a counter
 *   key every gateway reads). A cached value belongs to the generation it was
 *   read under and is dropped as soon as the generation moves.
 * - On SQLite (one gateway process per file, see port.ts) every write goes
 *   through this process: checking the generation costs nothing. On Redis it
 *   is one GET of the counter, and `readSnapshot` lets a whole request share
 *   that one GET (it happens inside the request, so a change completed before
 *   the request began is always seen).
 *
 * Writers bump after writing and readers read the generation before the value,
 * so a reader either sees the new generation (and reads the new value) or reads
 * under the old one, whose entries the next read discards. Watched keys must not
 * be written with a TTL (an expiry is not a write; such keys are never cached).
 * A write made with another client, around this wrapper, is not seen.
 */

/** The shared counter (Redis): one key, bumped by every gateway's writes to watched keys. */
export const GENERATION_KEY = "gen:cached-reads";
const MAX_ENTRIES = 20_000;

interface Snapshot {
  shared: Map<ReadCachingKv, Promise<string>>;
}
const snapshots = new AsyncLocalStorage<Snapshot>();

/**
 * Prefixes cached by every ReadCachingKv in this process. Registered when the
 * module owning the keys is loaded (not when a registry is constructed), so a
 * process that writes such a key always bumps the generation for it.
 */
const WATCHED = new Set<string>();

/**
 * Run `fn` with one generation read per store for all its cached reads (one
 * request of the proxy). Nothing is cached across snapshots that a write
 * between them changed.
 */
export function readSnapshot<T>(fn: () => T): T {
  return snapshots.run({ shared: new Map() }, fn);
}

export class ReadCachingKv implements KeyValue {
  readonly #inner: KeyValue;
  /** Shared store (several gateways): the generation includes the counter key. */
  readonly #shared: boolean;
  readonly #prefixes = new Set<string>();
  /** Written with a TTL at some point: never cached (an expiry bumps nothing). */
  readonly #volatile = new Set<string>();
  #local = 0;
  #cacheGen = "";
  readonly #cache = new Map<string, string | null>();
  readonly #lists = new Map<string, { key: string; value: string }[]>();

  constructor(inner: KeyValue, opts: { shared: boolean }) {
    this.#inner = inner;
    this.#shared = opts.shared;
  }

  /** Cache reads of keys under `prefix` in this instance only (idempotent). */
  watch(prefix: string): void {
    this.#prefixes.add(prefix);
  }

  #watched(key: string): boolean {
    return !this.#volatile.has(key) && this.#watchedPrefix(key);
  }

  async #generation(): Promise<string> {
    if (!this.#shared) return String(this.#local);
    const snap = snapshots.getStore();
    let shared = snap?.shared.get(this);
    if (!shared) {
      shared = this.#inner.get(GENERATION_KEY).then((v) => v ?? "0");
      snap?.shared.set(this, shared);
      // A failed read must not stick to the snapshot.
      shared.catch(() => snap?.shared.delete(this));
    }
    return `${this.#local}:${await shared}`;
  }

  /** The generation for a read now; a different one than the cache's empties it. */
  async #begin(): Promise<string> {
    const gen = await this.#generation();
    if (gen !== this.#cacheGen) {
      this.#cache.clear();
      this.#lists.clear();
      this.#cacheGen = gen;
    }
    return gen;
  }

  #remember<V>(map: Map<string, V>, gen: string, key: string, value: V): void {
    // A read that began under an older generation may hold an older value.
    if (gen !== this.#cacheGen) return;
    if (map.size >= MAX_ENTRIES) map.delete(map.keys().next().value!);
    map.set(key, value);
  }

  /** After a write to `key` (or keys under it): move the generation on. */
  async #wrote(key: string, ttlMs?: number): Promise<void> {
    if (!this.#watchedPrefix(key)) return;
    if (ttlMs !== undefined) this.#volatile.add(key);
    this.#local++;
    if (this.#shared) await this.#inner.incr(GENERATION_KEY);
  }

  #watchedPrefix(key: string): boolean {
    for (const p of WATCHED) if (key.startsWith(p)) return true;
    for (const p of this.#prefixes) if (key.startsWith(p)) return true;
    return false;
  }

  async get(key: string): Promise<string | null> {
    if (!this.#watched(key)) return this.#inner.get(key);
    const gen = await this.#begin();
    if (this.#cache.has(key)) return this.#cache.get(key)!;
    const value = await this.#inner.get(key);
    this.#remember(this.#cache, gen, key, value);
    return value;
  }

  async getMany(keys: string[]): Promise<(string | null)[]> {
    if (!keys.some((k) => this.#watched(k))) return this.#inner.getMany(keys);
    const gen = await this.#begin();
    // Taken from the cache now: another read may empty it while the rest is read.
    const cached = new Map<string, string | null>();
    const missing: string[] = [];
    for (const k of keys) {
      if (this.#watched(k) && this.#cache.has(k)) cached.set(k, this.#cache.get(k)!);
      else missing.push(k);
    }
    const read = missing.length ? await this.#inner.getMany(missing) : [];
    const fresh = new Map(missing.map((k, i) => [k, read[i]!]));
    for (const [k, v] of fresh) if (this.#watched(k)) this.#remember(this.#cache, gen, k, v);
    return keys.map((k) => (fresh.has(k) ? fresh.get(k)! : cached.get(k)!));
  }

  async list(
    prefix: string,
    opts?: { limit?: number; after?: string },
  ): Promise<{ key: string; value: string }[]> {
    if (!this.#watchedPrefix(prefix) || this.#volatile.size > 0) {
      return this.#inner.list(prefix, opts);
    }
    const gen = await this.#begin();
    const id = `${prefix}\0${opts?.limit ?? ""}\0${opts?.after ?? ""}`;
    const hit = this.#lists.get(id);
    if (hit) return hit.map((e) => ({ ...e }));
    const rows = await this.#inner.list(prefix, opts);
    this.#remember(this.#lists, gen, id, rows);
    return rows.map((e) => ({ ...e }));
  }

  async set(key: string, value: string, opts?: SetOptions): Promise<boolean> {
    try {
      return await this.#inner.set(key, value, opts);
    } finally {
      await this.#wrote(key, opts?.ttlMs);
    }
  }

  async del(key: string): Promise<boolean> {
    try {
      return await this.#inner.del(key);
    } finally {
      await this.#wrote(key);
    }
  }

  async incr(key: string, by?: number, opts?: { ttlMs?: number }): Promise<number> {
    try {
      return await this.#inner.incr(key, by, opts);
    } finally {
      await this.#wrote(key, opts?.ttlMs);
    }
  }

  async compareAndSet(
    key: string,
    expected: string | null,
    value: string,
    opts?: { ttlMs?: number },
  ): Promise<boolean> {
    try {
      return await this.#inner.compareAndSet(key, expected, value, opts);
    } finally {
      await this.#wrote(key, opts?.ttlMs);
    }
  }

  async update(
    key: string,
    fn: (current: string | null) => string | undefined,
    opts?: UpdateOptions,
  ): Promise<string | null> {
    try {
      return await this.#inner.update(key, fn, opts);
    } finally {
      await this.#wrote(key, opts?.ttlMs);
    }
  }

  async take(key: string): Promise<string | null> {
    try {
      return await this.#inner.take(key);
    } finally {
      await this.#wrote(key);
    }
  }

  ttl(key: string): Promise<number | null> {
    return this.#inner.ttl(key);
  }
}

/**
 * Cache reads of keys under `prefix` in every store of this process (stores
 * opened by createStore wrap their kv in a ReadCachingKv). Call at module load
 * of the code that owns those keys.
 */
export function cacheReads(prefix: string): void {
  WATCHED.add(prefix);
}
