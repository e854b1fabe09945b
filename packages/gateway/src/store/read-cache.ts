import { AsyncLocalStorage } from "node:async_hooks";
import type { KeyValue, SetOptions, UpdateOptions } from "./port.ts";

/**
 * Reads of hot, rarely written keys (placeholder bindings, secrets, people's
 * grants and settings, agents and account links: what the egress proxy and a
 * turn's context read again and again) answered from memory, without ever
 * serving a value older than the last completed write:
 *
 * - Each watched prefix is a partition with its own generation. Every write to
 *   a watched key through this wrapper bumps the generation of every partition
 *   the key is under, after the write (in this process at once; with a shared
 *   store, also a counter key per partition that every gateway reads). A cached
 *   value belongs to the generation it was read under and is dropped as soon as
 *   its partition's generation moves. Partitions keep a turn's placeholder
 *   writes (several per turn) from emptying the cache of secrets, settings or
 *   agents, which change only when a person or an operator changes them.
 * - On SQLite (one gateway process per file, see port.ts) every write goes
 *   through this process: checking the generation costs nothing. On Redis it
 *   is one GET of the partition's counter, and `readSnapshot` lets a whole
 *   request share one read of every counter (it happens inside the request,
 *   so a change completed before the request began is always seen).
 *
 * Writers bump after writing and readers read the generation before the value,
 * so a reader either sees the new generation (and reads the new value) or reads
 * under the old one, whose entries the next read discards. Watched keys must not
 * be written with a TTL (an expiry is not a write; such keys are never cached,
 * and lists in their partition are not either). A write made with another
 * client, around this wrapper, is not seen.
 */

/** The shared counter (Redis) of one partition, bumped by every gateway's writes under `prefix`. */
export const generationKey = (prefix: string) => `gen:cached-reads:${prefix}`;
/** Entries kept per partition. */
const MAX_ENTRIES = 20_000;

interface Snapshot {
  /** Per store: its partitions' shared counters, read once for the request. */
  shared: Map<ReadCachingKv, Promise<Map<string, string>>>;
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

/** The cache of one watched prefix. */
interface Partition {
  readonly prefix: string;
  /** Writes under the prefix made through this process. */
  local: number;
  /** The generation `values` and `lists` were read under. */
  gen: string;
  readonly values: Map<string, string | null>;
  readonly lists: Map<string, { key: string; value: string }[]>;
  /** A key under the prefix was written with a TTL: its lists are never cached. */
  volatile: boolean;
}

export class ReadCachingKv implements KeyValue {
  readonly #inner: KeyValue;
  /** Shared store (several gateways): the generation includes the counter keys. */
  readonly #shared: boolean;
  readonly #prefixes = new Set<string>();
  readonly #partitions = new Map<string, Partition>();
  /** Written with a TTL at some point: never cached (an expiry bumps nothing). */
  readonly #volatile = new Set<string>();

  constructor(inner: KeyValue, opts: { shared: boolean }) {
    this.#inner = inner;
    this.#shared = opts.shared;
  }

  /** Cache reads of keys under `prefix` in this instance only (idempotent). */
  watch(prefix: string): void {
    this.#prefixes.add(prefix);
  }

  /** Every watched prefix `key` is under (nested prefixes: several). */
  *#prefixesOf(key: string): Iterable<string> {
    for (const p of WATCHED) if (key.startsWith(p)) yield p;
    for (const p of this.#prefixes) if (key.startsWith(p) && !WATCHED.has(p)) yield p;
  }

  /** The partition that caches reads of `key`: its longest watched prefix. */
  #partitionOf(key: string): Partition | undefined {
    // Every read asks this: plain loops, not #prefixesOf's generator.
    let prefix: string | undefined;
    for (const watched of [WATCHED, this.#prefixes])
      for (const p of watched)
        if (key.startsWith(p) && (prefix === undefined || p.length > prefix.length)) prefix = p;
    return prefix === undefined ? undefined : this.#partition(prefix);
  }

  #partition(prefix: string): Partition {
    let part = this.#partitions.get(prefix);
    if (!part) {
      part = { prefix, local: 0, gen: "", values: new Map(), lists: new Map(), volatile: false };
      this.#partitions.set(prefix, part);
    }
    return part;
  }

  #cachedPartitionOf(key: string): Partition | undefined {
    return this.#volatile.has(key) ? undefined : this.#partitionOf(key);
  }

  /** The shared counters of every partition, one read (per request inside a snapshot). */
  #sharedCounters(prefix: string): Promise<Map<string, string>> {
    const snap = snapshots.getStore();
    let counters = snap?.shared.get(this);
    if (!counters) {
      const prefixes = snap ? [...new Set([...this.#partitions.keys(), prefix])] : [prefix];
      counters = this.#inner
        .getMany(prefixes.map(generationKey))
        .then((values) => new Map(prefixes.map((p, i) => [p, values[i] ?? "0"])));
      if (snap) {
        snap.shared.set(this, counters);
        // A failed read must not stick to the snapshot.
        counters.catch(() => snap.shared.delete(this));
      }
    }
    return counters;
  }

  async #generation(part: Partition): Promise<string> {
    if (!this.#shared) return String(part.local);
    const counters = await this.#sharedCounters(part.prefix);
    // (A partition first seen after the snapshot's read: read its own counter.)
    const shared =
      counters.get(part.prefix) ?? (await this.#inner.get(generationKey(part.prefix))) ?? "0";
    return `${part.local}:${shared}`;
  }

  /** The generation for a read now; a different one than the partition's empties it. */
  async #begin(part: Partition): Promise<string> {
    const gen = await this.#generation(part);
    if (gen !== part.gen) {
      part.values.clear();
      part.lists.clear();
      part.gen = gen;
    }
    return gen;
  }

  #remember<V>(part: Partition, map: Map<string, V>, gen: string, key: string, value: V): void {
    // A read that began under an older generation may hold an older value.
    if (gen !== part.gen) return;
    if (map.size >= MAX_ENTRIES) map.delete(map.keys().next().value!);
    map.set(key, value);
  }

  /** After a write to `key`: move on the generation of every partition it is under. */
  async #wrote(key: string, ttlMs?: number): Promise<void> {
    const prefixes = [...this.#prefixesOf(key)];
    if (prefixes.length === 0) return;
    if (ttlMs !== undefined) this.#volatile.add(key);
    for (const prefix of prefixes) {
      const part = this.#partition(prefix);
      if (ttlMs !== undefined) part.volatile = true;
      part.local++;
    }
    if (this.#shared) await Promise.all(prefixes.map((p) => this.#inner.incr(generationKey(p))));
  }

  async get(key: string): Promise<string | null> {
    const part = this.#cachedPartitionOf(key);
    if (!part) return this.#inner.get(key);
    const gen = await this.#begin(part);
    if (part.values.has(key)) return part.values.get(key)!;
    const value = await this.#inner.get(key);
    this.#remember(part, part.values, gen, key, value);
    return value;
  }

  async getMany(keys: string[]): Promise<(string | null)[]> {
    const parts = keys.map((k) => this.#cachedPartitionOf(k));
    if (!parts.some(Boolean)) return this.#inner.getMany(keys);
    const gens = new Map<Partition, string>();
    for (const part of new Set(parts)) if (part) gens.set(part, await this.#begin(part));
    // Taken from the cache now: another read may empty it while the rest is read.
    const cached = new Map<string, string | null>();
    const missing: string[] = [];
    keys.forEach((k, i) => {
      const part = parts[i];
      if (part?.values.has(k)) cached.set(k, part.values.get(k)!);
      else missing.push(k);
    });
    const read = missing.length ? await this.#inner.getMany(missing) : [];
    const fresh = new Map(missing.map((k, i) => [k, read[i]!]));
    keys.forEach((k, i) => {
      const part = parts[i];
      if (part && fresh.has(k))
        this.#remember(part, part.values, gens.get(part)!, k, fresh.get(k)!);
    });
    return keys.map((k) => (fresh.has(k) ? fresh.get(k)! : cached.get(k)!));
  }

  async list(
    prefix: string,
    opts?: { limit?: number; after?: string },
  ): Promise<{ key: string; value: string }[]> {
    // Cached when one partition holds every key the list can return.
    const part = this.#partitionOf(prefix);
    if (!part || part.volatile) return this.#inner.list(prefix, opts);
    const gen = await this.#begin(part);
    const id = `${prefix}\0${opts?.limit ?? ""}\0${opts?.after ?? ""}`;
    const hit = part.lists.get(id);
    if (hit) return hit.map((e) => ({ ...e }));
    const rows = await this.#inner.list(prefix, opts);
    this.#remember(part, part.lists, gen, id, rows);
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
