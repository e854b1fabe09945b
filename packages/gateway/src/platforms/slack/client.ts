import { ErrorCode, LogLevel, type Logger as SlackLogger, WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import { type CallFailure, platformCalls } from "../shared/pacing.ts";

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

/** Slack's `ok:false` errors that mean "Slack failed for now", not "this call is wrong". */
const UNAVAILABLE = new Set([
  "internal_error",
  "fatal_error",
  "service_unavailable",
  "request_timeout",
  "team_added_to_org",
]);
/** Slack's errors for a message longer than it takes. */
const TOO_LONG = new Set(["msg_too_long", "msg_blocks_too_long"]);

/** What a Web API error means for delivery (shared/pacing.ts); undefined: trying again will not help. */
export function slackFailure(err: unknown): CallFailure | undefined {
  const e = err as { code?: string; retryAfter?: number; statusCode?: number };
  switch (e.code) {
    case ErrorCode.RateLimitedError:
      return {
        kind: "rate_limited",
        ...(e.retryAfter !== undefined ? { retryAfterSec: e.retryAfter } : {}),
      };
    case ErrorCode.RequestError:
      return { kind: "unavailable", message: "Slack could not be reached" };
    case ErrorCode.HTTPError:
      return (e.statusCode ?? 0) >= 500
        ? { kind: "unavailable", message: `Slack answered HTTP ${e.statusCode}` }
        : undefined;
    case ErrorCode.PlatformError: {
      const code = slackErrorCode(err) ?? "";
      if (TOO_LONG.has(code)) return { kind: "too_long", message: code };
      if (UNAVAILABLE.has(code)) return { kind: "unavailable", message: code };
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * Run a Web API call, with Slack's failures read for the delivery policy:
 * 429 and outages become RetryLater, msg_too_long MessageTooLong.
 */
export const slackCall = platformCalls(slackFailure);

/** Slack's error code for a failed call (`channel_not_found`, ...), if it was a platform error. */
export function slackErrorCode(err: unknown): string | undefined {
  const e = err as { code?: string; data?: { error?: string } };
  return e.code === ErrorCode.PlatformError ? e.data?.error : undefined;
}
