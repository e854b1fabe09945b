/**
 * Pacing of platform edits: a platform says "slow down" by throwing RetryLater;
 * a Coalescer turns many content changes into at most one edit per interval.
 */

/** Thrown by a platform call that was rate limited; try again after `afterMs`. */
export class RetryLater extends Error {
  readonly afterMs: number;

  constructor(afterMs: number, message = `rate limited; retry in ${afterMs} ms`) {
    super(message);
    this.name = "RetryLater";
    this.afterMs = afterMs;
  }
}

const MAX_WAIT_MS = 60_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Run `fn`, waiting out rate limits (a bounded number of times) instead of failing. */
export async function withRetryLater<T>(fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof RetryLater) || i >= attempts) throw err;
      await sleep(Math.min(err.afterMs, MAX_WAIT_MS));
    }
  }
}

/** What a platform's error says about a rate limit: how long to wait, in its words. */
export interface RateLimit {
  /** Seconds the platform asks to wait (at least one is waited). */
  retryAfterSec?: number;
  message?: string;
}

/**
 * A wrapper for a platform's API calls that turns its rate-limit error
 * (`rateLimitOf` returns undefined for any other error) into RetryLater, so
 * streaming skips to newer content and final messages wait it out.
 */
export function rateLimitedCalls(
  rateLimitOf: (err: unknown) => RateLimit | undefined,
): <T>(fn: () => Promise<T>) => Promise<T> {
  return async (fn) => {
    try {
      return await fn();
    } catch (err) {
      const limit = rateLimitOf(err);
      if (limit) throw new RetryLater(Math.max(1, limit.retryAfterSec ?? 1) * 1000, limit.message);
      throw err;
    }
  };
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
          this.#nextAt = Date.now() + Math.min(err.afterMs, MAX_WAIT_MS);
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
