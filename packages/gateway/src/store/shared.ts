/**
 * Pieces both store adapters share, so their semantics cannot drift apart:
 * argument checks, stream-id cursors, `kv.update` on top of compare-and-set,
 * listener fan-out and the self-rescheduling timer behind `queue.onAvailable`.
 */
import { createLogger, LobuError, newId } from "@lobu/core";
import type { EnqueueOptions, KeyValue, UpdateOptions } from "./port.ts";

export const log = createLogger("store");

/** How long a dedupe key blocks repeats when `dedupeTtlMs` is not given. */
export const DEFAULT_DEDUPE_TTL_MS = 24 * 60 * 60 * 1000;

/** Upper bound between availability checks, which also catches other gateways' delays. */
export const AVAILABILITY_POLL_MS = 1000;

/** A TTL/lease/delay must be a positive number of milliseconds; fractions round up. */
export function positiveMs(value: number, what: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new LobuError("store_invalid_duration", `${what} must be a positive number of ms`, {
      details: { value },
    });
  }
  return Math.ceil(value);
}

/** An optional TTL: absent means none; otherwise as `positiveMs`. */
export function optionalMs(value: number | undefined, what: string): number | undefined {
  return value === undefined ? undefined : positiveMs(value, what);
}

/** A finite number of ms, where zero or negative means none. */
function nonNegativeMs(value: number, what: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new LobuError("store_invalid_duration", `${what} must be a finite number of ms`, {
      details: { value },
    });
  }
  return value <= 0 ? 0 : Math.ceil(value);
}

/** Optional delay: absent, zero or negative means "now". */
export function delayMs(value: number | undefined): number {
  return value === undefined ? 0 : nonNegativeMs(value, "delayMs");
}

/** How long a stream read may block: zero or negative means "do not block". */
export function blockMsOf(value: number): number {
  return nonNegativeMs(value, "blockMs");
}

/** Optional result limit: absent means unlimited; otherwise a positive integer. */
export function limitOf(value: number | undefined, what = "limit"): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value <= 0) {
    throw new LobuError("store_invalid_limit", `${what} must be a positive integer`, {
      details: { value },
    });
  }
  return value;
}

/** The `by` of `kv.incr`: a safe integer. */
export function incrementOf(by: number): number {
  if (!Number.isSafeInteger(by)) {
    throw new LobuError("store_invalid_increment", "incr `by` must be an integer", {
      details: { value: by },
    });
  }
  return by;
}

export function notIntegerError(key: string, cause?: unknown): LobuError {
  return new LobuError("store_not_integer", `kv key "${key}" does not hold an integer`, {
    hint: "incr only works on keys written by incr (or holding a base-10 integer).",
    cause,
  });
}

/** Lost races `kv.update` accepts before it gives up, when the caller does not say. */
export const DEFAULT_UPDATE_ATTEMPTS = 20;

/** Upper bound of the random wait between two `kv.update` attempts. */
const UPDATE_BACKOFF_CAP_MS = 50;

/**
 * `KeyValue.update` for both adapters: read, compute, compare-and-set, and
 * again on a lost race (after a random wait that doubles up to 50 ms, so the
 * writers that collided do not collide again in lockstep). One implementation,
 * so SQLite and Redis give up alike: with `conflict` after `maxAttempts`.
 */
export async function updateByCompareAndSet(
  kv: Pick<KeyValue, "get" | "compareAndSet">,
  key: string,
  fn: (current: string | null) => string | undefined,
  opts: UpdateOptions = {},
): Promise<string | null> {
  const ttlMs = optionalMs(opts.ttlMs, "ttlMs");
  const attempts = limitOf(opts.maxAttempts, "maxAttempts") ?? DEFAULT_UPDATE_ATTEMPTS;
  for (let attempt = 1; ; attempt++) {
    const current = await kv.get(key);
    const next = fn(current);
    if (next === undefined) return current;
    if (await kv.compareAndSet(key, current, next, ttlMs === undefined ? {} : { ttlMs })) {
      return next;
    }
    if (attempt >= attempts) break;
    const backoff = Math.random() * Math.min(UPDATE_BACKOFF_CAP_MS, 2 ** attempt);
    await new Promise((resolve) => setTimeout(resolve, backoff));
  }
  throw new LobuError(
    "conflict",
    `kv key "${key}" kept changing while it was being updated (${attempts} attempts)`,
    {
      status: 409,
      hint: "Other writers change this record constantly; retry the request.",
      details: { key, attempts },
    },
  );
}

/** `EnqueueOptions` checked and defaulted, identically for both adapters. */
export function enqueueOptions(opts: EnqueueOptions): {
  id: string;
  delay: number;
  dedupeKey: string | undefined;
  dedupeTtl: number;
} {
  const { dedupeKey } = opts;
  if (opts.id === "") {
    throw new LobuError("store_invalid_id", "enqueue id must not be empty", {
      hint: "Omit `id` to get a generated one.",
    });
  }
  return {
    id: opts.id ?? newId("msg"),
    delay: delayMs(opts.delayMs),
    dedupeKey,
    dedupeTtl:
      dedupeKey === undefined
        ? 0
        : positiveMs(opts.dedupeTtlMs ?? DEFAULT_DEDUPE_TTL_MS, "dedupeTtlMs"),
  };
}

export interface StreamId {
  ms: number;
  seq: number;
}

/** Parse a `<ms>-<seq>` stream cursor (a bare `<ms>` means `<ms>-0`). */
export function parseStreamId(id: string): StreamId {
  const m = /^(\d{1,16})(?:-(\d{1,16}))?$/.exec(id);
  if (!m) {
    throw new LobuError("store_invalid_cursor", `invalid stream cursor "${id}"`, {
      hint: "Pass an id returned by append/range/read (`<ms>-<seq>`).",
    });
  }
  return { ms: Number(m[1]), seq: Number(m[2] ?? 0) };
}

export function formatStreamId(id: StreamId): string {
  return `${id.ms}-${id.seq}`;
}

export function closedError(kind: string): LobuError {
  return new LobuError("store_closed", `the ${kind} store is closed`, {
    status: 503,
    hint: "The gateway is shutting down; retry against a running gateway.",
  });
}

/** Call a listener, keeping one faulty listener from breaking the others. */
export function safeCall<A extends unknown[]>(fn: (...args: A) => void, ...args: A): void {
  try {
    fn(...args);
  } catch (err) {
    log.error({ err }, "store listener threw");
  }
}

/**
 * Listeners of `queue.onAvailable`. Signals arriving in one turn of the event
 * loop are coalesced into a single call per listener.
 */
export class AvailabilitySignal {
  #listeners = new Set<() => void>();
  #pending = false;
  #onFirst: () => void;
  #onLast: () => void;

  constructor(hooks: { onFirst: () => void; onLast: () => void }) {
    this.#onFirst = hooks.onFirst;
    this.#onLast = hooks.onLast;
  }

  get size(): number {
    return this.#listeners.size;
  }

  add(listener: () => void): () => void {
    // Wrap so the same function registered twice is two registrations.
    const entry = () => listener();
    this.#listeners.add(entry);
    if (this.#listeners.size === 1) this.#onFirst();
    return () => {
      if (this.#listeners.delete(entry) && this.#listeners.size === 0) this.#onLast();
    };
  }

  fire(): void {
    if (this.#pending || this.#listeners.size === 0) return;
    this.#pending = true;
    setImmediate(() => {
      this.#pending = false;
      for (const listener of [...this.#listeners]) safeCall(listener);
    });
  }

  clear(): void {
    const had = this.#listeners.size > 0;
    this.#listeners.clear();
    if (had) this.#onLast();
  }
}

/**
 * Runs `check` repeatedly while started; `check` returns how long until it next
 * has something to do (undefined = nothing known), capped at `maxMs`. The timer
 * is unref'd so it never keeps the process alive.
 */
export class Ticker {
  #check: () => Promise<number | undefined>;
  #maxMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #started = false;
  #again = false;

  constructor(check: () => Promise<number | undefined>, maxMs: number) {
    this.#check = check;
    this.#maxMs = maxMs;
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#schedule(0);
  }

  stop(): void {
    this.#started = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Something changed the next due time: check again soon. */
  poke(): void {
    if (!this.#started) return;
    if (this.#running) this.#again = true;
    else this.#schedule(0);
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#run(), Math.max(0, Math.min(ms, this.#maxMs)));
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    this.#timer = undefined;
    this.#running = true;
    this.#again = false;
    let next: number | undefined;
    try {
      next = await this.#check();
    } catch (err) {
      log.warn({ err }, "store availability check failed");
    }
    this.#running = false;
    if (!this.#started) return;
    // Wake at the due time (+1ms so the deadline has really passed).
    this.#schedule(this.#again ? 0 : next === undefined ? this.#maxMs : next + 1);
  }
}
