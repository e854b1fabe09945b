/** `limit` calls per `windowMs`, counted in fixed windows per key. */
export interface RateLimitRule {
  limit: number;
  windowMs: number;
}

export type RateDecision = { limited: false } | { limited: true; retryAfterSec: number };

/**
 * Fixed-window counters keyed by whatever the platform scopes limits to
 * (method + workspace on Slack, chat on Telegram).
 */
export class RateLimiter {
  readonly #windows = new Map<string, { start: number; count: number }>();

  /** Counts a call, unless the key is already over its limit. */
  hit(key: string, rule: RateLimitRule, now = Date.now()): RateDecision {
    const decision = this.check(key, rule, now);
    if (!decision.limited) this.#window(key, rule, now).count++;
    return decision;
  }

  /** Whether a call would be limited, without counting it. */
  check(key: string, rule: RateLimitRule, now = Date.now()): RateDecision {
    const window = this.#window(key, rule, now);
    if (window.count < rule.limit) return { limited: false };
    const retryAfterSec = Math.max(1, Math.ceil((window.start + rule.windowMs - now) / 1000));
    return { limited: true, retryAfterSec };
  }

  #window(key: string, rule: RateLimitRule, now: number): { start: number; count: number } {
    let window = this.#windows.get(key);
    if (!window || now - window.start >= rule.windowMs) {
      window = { start: now, count: 0 };
      this.#windows.set(key, window);
    }
    return window;
  }

  reset(): void {
    this.#windows.clear();
  }
}

/** Failures queued by tests, consumed one per matching call. */
export class FailureQueue<F> {
  readonly #queue = new Map<string, { failure: F; times: number }[]>();

  push(key: string, failure: F, times = 1): void {
    const list = this.#queue.get(key) ?? [];
    list.push({ failure, times });
    this.#queue.set(key, list);
  }

  take(key: string): F | undefined {
    const list = this.#queue.get(key);
    const head = list?.[0];
    if (!list || !head) return undefined;
    head.times--;
    if (head.times <= 0) list.shift();
    if (list.length === 0) this.#queue.delete(key);
    return head.failure;
  }

  reset(): void {
    this.#queue.clear();
  }
}
