/**
 * Pacing and delivery of platform calls, one policy for every platform:
 *
 * - a platform's failures are read by its adapter into three kinds (a rate
 *   limit, the platform being unavailable for now, a message too long);
 *   `platformCalls` turns the first two into RetryLater and the third into
 *   MessageTooLong;
 * - streaming edits skip to newer content on RetryLater (Coalescer);
 * - what must arrive (a final reply, a card, a notice) goes through
 *   `withRetryLater`: rate limits are waited out for as long as the platform
 *   asks (capped per wait), outages are retried with backoff, within one
 *   deadline; a message too long is split by the caller (turn-view.ts).
 */

/** Thrown by a platform call that was rate limited or failed for now; try again after `afterMs`. */
export class RetryLater extends Error {
  readonly afterMs: number;
  /** The platform failed for now (not a rate limit): waits back off, doubling. */
  readonly outage: boolean;

  constructor(
    afterMs: number,
    message = `rate limited; retry in ${afterMs} ms`,
    opts: { outage?: boolean } = {},
  ) {
    super(message);
    this.name = "RetryLater";
    this.afterMs = afterMs;
    this.outage = opts.outage ?? false;
  }
}

/** Thrown by a platform call whose message is longer than the platform takes: send it in parts. */
export class MessageTooLong extends Error {
  constructor(message = "the message is too long for the platform") {
    super(message);
    this.name = "MessageTooLong";
  }
}

/** The delivery policy of what must arrive (`withRetryLater`). */
export const DELIVERY_POLICY = {
  /** Calls in all, the first included. */
  attempts: 10,
  /** Longest single wait: a longer Retry-After is waited in several. */
  maxWaitMs: 300_000,
  /** Give up when the next wait would end after this long (from the first call). */
  deadlineMs: 900_000,
  /** Waits after an outage (5xx, network): doubled each time from this, up to `maxWaitMs`. */
  backoffMs: 1_000,
};

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Run `fn` until it succeeds: RetryLater is waited out (what the platform
 * asked, capped per wait) within the policy's attempts and deadline. Any
 * other error, MessageTooLong included, is thrown at once.
 */
export async function withRetryLater<T>(
  fn: () => Promise<T>,
  policy: Partial<typeof DELIVERY_POLICY> = {},
): Promise<T> {
  const p = { ...DELIVERY_POLICY, ...policy };
  const deadline = Date.now() + p.deadlineMs;
  let outages = 0;
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof RetryLater) || i >= p.attempts) throw err;
      const asked = err.outage ? p.backoffMs * 2 ** outages++ : err.afterMs;
      const wait = Math.min(asked, p.maxWaitMs);
      if (Date.now() + wait > deadline) throw err;
      await sleep(wait);
    }
  }
}

/** What a platform's error means for delivery, as its adapter reads it. */
export type CallFailure =
  /** "Slow down": wait what the platform asks (at least a second). */
  | { kind: "rate_limited"; retryAfterSec?: number; message?: string }
  /** The platform failed for now (5xx, a network error, its own internal error): try again. */
  | { kind: "unavailable"; message?: string }
  /** The message is longer than the platform takes. */
  | { kind: "too_long"; message?: string };

/** Kept for adapters that read only rate limits. */
export type RateLimit = Omit<Extract<CallFailure, { kind: "rate_limited" }>, "kind">;

/**
 * A wrapper for a platform's API calls that turns its failures (`failureOf`
 * reads them; undefined for errors that will not go away by trying again)
 * into RetryLater or MessageTooLong, so streaming skips to newer content,
 * what must arrive waits or retries, and a long message is split.
 */
export function platformCalls(
  failureOf: (err: unknown) => CallFailure | undefined,
): <T>(fn: () => Promise<T>) => Promise<T> {
  return async (fn) => {
    let outage = 0;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        const failure = failureOf(err);
        if (!failure) throw err;
        switch (failure.kind) {
          case "rate_limited":
            throw new RetryLater(
              Math.max(1, failure.retryAfterSec ?? 1) * 1000,
              failure.message ?? "rate limited",
            );
          case "too_long":
            throw new MessageTooLong(failure.message);
          case "unavailable":
            // One quick retry inside the call; after that the caller's policy decides.
            if (outage++ === 0) {
              await sleep(250);
              continue;
            }
            throw new RetryLater(DELIVERY_POLICY.backoffMs, failure.message ?? "unavailable", {
              outage: true,
            });
        }
      }
    }
  };
}

/** `platformCalls` for an adapter that reads only rate limits from its errors. */
export function rateLimitedCalls(
  rateLimitOf: (err: unknown) => RateLimit | undefined,
): <T>(fn: () => Promise<T>) => Promise<T> {
  return platformCalls((err) => {
    const limit = rateLimitOf(err);
    return limit ? { kind: "rate_limited", ...limit } : undefined;
  });
}

/**
 * Calls `flush` when content changed, at most once per `intervalMs` and never
 * two at a time; changes made meanwhile are folded into the next call.
 */
export class Coalescer {
  readonly #intervalMs: number;
  readonly #flush: () => Promise<void>;
  readonly #onError: (err: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;
  #dirty = false;
  #paused = false;
  #nextAt = 0;

  constructor(intervalMs: number, flush: () => Promise<void>, onError: (err: unknown) => void) {
    this.#intervalMs = intervalMs;
    this.#flush = flush;
    this.#onError = onError;
  }

  /** Content changed: flush soon. */
  changed(): void {
    this.#dirty = true;
    this.#schedule();
  }

  /** A flush happened outside (e.g. a placeholder was posted): wait a full interval. */
  touched(): void {
    this.#nextAt = Date.now() + this.#intervalMs;
  }

  /** Stop flushing and wait for a flush in flight; the caller renders the end state itself. */
  async pause(): Promise<void> {
    this.#paused = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#inflight;
    this.#dirty = false;
  }

  resume(): void {
    this.#paused = false;
    if (this.#dirty) this.#schedule();
  }

  #schedule(): void {
    if (this.#paused || this.#timer || this.#inflight) return;
    const wait = Math.max(0, this.#nextAt - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, wait);
  }

  async #run(): Promise<void> {
    if (!this.#dirty || this.#paused) return;
    this.#dirty = false;
    const run = this.#flush().then(
      () => {
        this.#nextAt = Date.now() + this.#intervalMs;
      },
      (err: unknown) => {
        if (err instanceof RetryLater) {
          this.#dirty = true;
          this.#nextAt = Date.now() + Math.min(err.afterMs, DELIVERY_POLICY.maxWaitMs);
        } else {
          this.#onError(err);
          this.#nextAt = Date.now() + this.#intervalMs;
        }
      },
    );
    this.#inflight = run;
    await run;
    this.#inflight = undefined;
    if (this.#dirty) this.#schedule();
  }
}
