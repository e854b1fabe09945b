import { ErrorCode, LogLevel, type Logger as SlackLogger, WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import { rateLimitedCalls } from "../shared/pacing.ts";

/** The Slack SDKs log through this, into the gateway's logger (debug noise stays at debug). */
export function slackLogger(log: Logger): SlackLogger {
  let level = LogLevel.WARN;
  const line = (msg: unknown[]) =>
    msg.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ");
  return {
    debug: (...msg) => log.debug(line(msg)),
    info: (...msg) => log.debug(line(msg)),
    warn: (...msg) => log.warn(line(msg)),
    error: (...msg) => log.error(line(msg)),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => {},
  };
}

/**
 * A Web API client for one bot token. Rate limits are not waited out inside
 * the SDK: they surface as RetryLater so streaming can skip to newer content.
 */
export function webClient(token: string | undefined, apiUrl: string, log: Logger): WebClient {
  return new WebClient(token, {
    slackApiUrl: apiUrl,
    logger: slackLogger(log),
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 2, factor: 2, minTimeout: 250, maxTimeout: 2_000 },
    timeout: 15_000,
  });
}

/** Run a Web API call, turning Slack's 429 into RetryLater. */
export const slackCall = rateLimitedCalls((err) => {
  const e = err as { code?: string; retryAfter?: number };
  return e.code === ErrorCode.RateLimitedError
    ? { ...(e.retryAfter !== undefined ? { retryAfterSec: e.retryAfter } : {}) }
    : undefined;
});

/** Slack's error code for a failed call (`channel_not_found`, ...), if it was a platform error. */
export function slackErrorCode(err: unknown): string | undefined {
  const e = err as { code?: string; data?: { error?: string } };
  return e.code === ErrorCode.PlatformError ? e.data?.error : undefined;
}
