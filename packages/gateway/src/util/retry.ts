import { setTimeout as sleep } from "node:timers/promises";

/**
 * Runs `attempt` until it succeeds, waiting `delaysMs[i]` after the i-th
 * failure; once the delays are used up, the last error is thrown. So
 * `delaysMs.length + 1` attempts in all. `onRetry` hears each failure that is
 * retried.
 */
export async function withRetries<T>(
  attempt: () => Promise<T>,
  delaysMs: readonly number[],
  onRetry?: (err: unknown, attemptNo: number) => void,
): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      const delay = delaysMs[i];
      if (delay === undefined) throw err;
      onRetry?.(err, i + 1);
      await sleep(delay);
    }
  }
}
