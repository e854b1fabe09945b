import { RateLimitError } from "@discordjs/rest";
import { type RateLimit, rateLimitedCalls } from "../shared/pacing.ts";

/**
 * Discord's REST calls go through @discordjs/rest, told to reject on a rate
 * limit (`rejectOnRateLimit`) instead of queueing: the limit becomes
 * RetryLater (shared pacing), so a streaming reply skips to newer content
 * and a final message waits it out.
 */
export function rateLimitOf(err: unknown): RateLimit | undefined {
  if (!(err instanceof RateLimitError)) return undefined;
  // retryAfter is in milliseconds.
  return { retryAfterSec: Math.max(1, Math.ceil(err.retryAfter / 1000)), message: err.message };
}

export const dcCall = rateLimitedCalls(rateLimitOf);
