/**
 * The storage port: the only way gateway code touches shared state. Two adapters
 * implement it with identical semantics (proved by one contract suite):
 *
 * - `sqlite`: embedded default on `node:sqlite`; one gateway process per file.
 * - `redis`: for several gateways behind a load balancer.
 *
 * Values are strings (callers JSON-encode). Keys are namespaced by callers with
 * `:`-separated segments (`agent:default`, `secret:inst:anthropic`).
 */
export interface Store {
  readonly kind: "sqlite" | "redis";
  readonly kv: KeyValue;
  readonly queue: MessageQueue;
  readonly streams: EventStreams;
  readonly locks: Locks;
  readonly pubsub: PubSub;
  /** Liveness check used by `/healthz` and `lobu doctor`. */
  ping(): Promise<void>;
  /**
   * Setup problems of the backing server or file, for `lobu doctor` ([] when
   * none). Opening a store already refuses `fail`-level setups.
   */
  diagnose(): Promise<StoreIssue[]>;
  close(): Promise<void>;
}

/** A setup problem found by `Store.diagnose`. */
export interface StoreIssue {
  /** `fail`: the store cannot work; `warn`: it works but can lose data. */
  level: "warn" | "fail";
  /** What is wrong, e.g. `Redis maxmemory-policy is allkeys-lru`. */
  problem: string;
  /** What to do about it. */
  fix: string;
}

export interface SetOptions {
  /** Expire the key after this many milliseconds. */
  ttlMs?: number;
  /** Only set when the key does not exist (returns false otherwise). */
  ifNotExists?: boolean;
}

export interface UpdateOptions {
  /** Expire the written value after this many milliseconds (as `set`: without it, the value has none). */
  ttlMs?: number;
  /** How many lost races to accept before giving up (default 20, see `KeyValue.update`). */
  maxAttempts?: number;
}

export interface KeyValue {
  get(key: string): Promise<string | null>;
  getMany(keys: string[]): Promise<(string | null)[]>;
  /** Returns false only when `ifNotExists` was given and the key existed. */
  set(key: string, value: string, opts?: SetOptions): Promise<boolean>;
  /** Returns whether the key existed. */
  del(key: string): Promise<boolean>;
  /** Atomically add `by` (default 1) to an integer value (missing = 0); returns the new value. */
  incr(key: string, by?: number, opts?: { ttlMs?: number }): Promise<number>;
  /**
   * Atomically replace the value only if it currently equals `expected`
   * (`null` = key absent). Returns whether the swap happened.
   */
  compareAndSet(
    key: string,
    expected: string | null,
    value: string,
    opts?: { ttlMs?: number },
  ): Promise<boolean>;
  /**
   * Read-modify-write one key without losing a concurrent change. `fn` gets
   * the current value (`null` = absent) and returns the value to write, or
   * `undefined` to write nothing. When another writer changes the key between
   * the read and the write, `fn` runs again on the new value, so it must
   * compute from its argument alone (it may throw to abort; nothing is
   * written then). Returns the value the key holds afterwards: what was
   * written, or the current one when `fn` wrote nothing.
   *
   * Under persistent contention it gives up after `maxAttempts` lost races
   * with a LobuError `conflict` (409), having written nothing: never a silent
   * no-op. Between attempts it waits a short random while, so writers that
   * collided spread out.
   */
  update(
    key: string,
    fn: (current: string | null) => string | undefined,
    opts?: UpdateOptions,
  ): Promise<string | null>;
  /** Read and delete in one step (single-use tokens). */
  take(key: string): Promise<string | null>;
  /** Keys starting with `prefix`, in lexicographic key order. */
  list(
    prefix: string,
    opts?: { limit?: number; after?: string },
  ): Promise<{ key: string; value: string }[]>;
  /** Milliseconds until expiry, -1 when the key has no TTL, null when absent. */
  ttl(key: string): Promise<number | null>;
}

export interface EnqueueOptions {
  /** Use this id instead of a generated one. */
  id?: string;
  /**
   * Drop the message when one with the same dedupe key was enqueued within
   * `dedupeTtlMs` (retried webhooks). Atomic with the enqueue.
   */
  dedupeKey?: string;
  dedupeTtlMs?: number;
  /** Do not deliver before this many milliseconds from now. */
  delayMs?: number;
}

export interface ClaimOptions {
  /** Partitions not to claim. */
  skip?: string[];
  /** Claim from this partition only. */
  partition?: string;
  /**
   * A lock-name prefix (see `Locks`): a partition whose lock `<placement><partition>`
   * is held by another owner is not claimed, in the same atomic step. This is how
   * several gateways leave a sandbox's messages to the one gateway it runs on.
   */
  placement?: string;
}

export interface QueuedMessage {
  id: string;
  /** Messages of one partition are delivered one at a time, in enqueue order. */
  partition: string;
  payload: string;
  /** Epoch ms of the enqueue. */
  enqueuedAt: number;
  /** How many times this message has been claimed (1 on first delivery). */
  attempts: number;
}

export interface QueueClaim extends QueuedMessage {
  /** Opaque token that proves ownership of the partition lease. */
  leaseToken: string;
  owner: string;
}

/**
 * Durable partitioned FIFO. A message stays in the queue until acknowledged; a
 * claim holds a lease on the whole partition (so one sandbox never runs two turns
 * at once). A lease that is not extended expires and the message is delivered
 * again (its `attempts` grows) — this is how a killed gateway loses nothing.
 */
export interface MessageQueue {
  enqueue(
    partition: string,
    payload: string,
    opts?: EnqueueOptions,
  ): Promise<{ id: string; duplicate: boolean }>;
  /**
   * Claim the oldest deliverable message of some partition that has no live
   * lease. Partitions in `skip` are ignored (e.g. sandboxes the caller cannot
   * serve right now). Returns null when nothing is deliverable.
   */
  claim(owner: string, leaseMs: number, opts?: ClaimOptions): Promise<QueueClaim | null>;
  /** Extend the lease; false when it was lost (expired and claimed by someone else). */
  extend(claim: QueueClaim, leaseMs: number): Promise<boolean>;
  /** Remove the message and release the partition. False when the lease was lost. */
  ack(claim: QueueClaim): Promise<boolean>;
  /** Put the message back (first in its partition) and release the partition. */
  release(claim: QueueClaim, opts?: { delayMs?: number }): Promise<boolean>;
  /** Messages waiting or in flight, oldest first (all partitions when omitted). */
  pending(partition?: string, opts?: { limit?: number }): Promise<QueuedMessage[]>;
  get(id: string): Promise<QueuedMessage | null>;
  /** Total messages in the queue. */
  depth(): Promise<number>;
  /** Drop every lease held by owners other than those listed (a restarted sole gateway). */
  releaseAllLeases(exceptOwners?: string[]): Promise<number>;
  /** Called (best effort, possibly coalesced) when a message may have become deliverable. */
  onAvailable(listener: () => void): () => void;
}

export interface StreamEntry {
  /** Monotonic id within the stream (`<ms>-<seq>`), usable as a cursor. */
  id: string;
  data: string;
}

/**
 * Append-only logs with cursors: conversation history, turn events (SSE with
 * resume), audit and usage records.
 */
export interface EventStreams {
  append(stream: string, data: string, opts?: { maxLen?: number; ttlMs?: number }): Promise<string>;
  /** Entries strictly after `after` (from the start when omitted), oldest first. */
  range(stream: string, opts?: { after?: string; limit?: number }): Promise<StreamEntry[]>;
  /** Newest entries first. */
  revRange(stream: string, opts?: { before?: string; limit?: number }): Promise<StreamEntry[]>;
  /**
   * Like `range`, but when nothing is there yet wait up to `blockMs` for new
   * entries. Returns [] on timeout or when `signal` aborts.
   */
  read(
    stream: string,
    after: string | undefined,
    opts: { blockMs: number; limit?: number; signal?: AbortSignal },
  ): Promise<StreamEntry[]>;
  length(stream: string): Promise<number>;
  /**
   * Remove single entries (retention, a person's erasure); ids not there are
   * ignored. Returns how many were removed.
   */
  remove(stream: string, ids: string[]): Promise<number>;
  delete(stream: string): Promise<void>;
}

export interface Locks {
  /** Acquire `name` for `owner` for `ttlMs`. Returns a token, or null when held by another. */
  acquire(name: string, owner: string, ttlMs: number): Promise<string | null>;
  extend(name: string, token: string, ttlMs: number): Promise<boolean>;
  release(name: string, token: string): Promise<boolean>;
  /** Current holder's owner string, or null. */
  holder(name: string): Promise<string | null>;
}

export interface PubSub {
  publish(channel: string, message: string): Promise<void>;
  /** Deliver messages published after this call resolves. */
  subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>>;
}
