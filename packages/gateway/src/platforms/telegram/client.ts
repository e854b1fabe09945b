import { type Api, GrammyError, HttpError } from "grammy";
import type { Origin } from "../../domain/origin.ts";
import { type CallFailure, platformCalls, withRetryLater } from "../shared/pacing.ts";
import { toTelegramHtml } from "./html.ts";

/** What a Bot API error means for delivery (shared/pacing.ts); undefined: trying again will not help. */
export function telegramFailure(err: unknown): CallFailure | undefined {
  if (err instanceof HttpError)
    return { kind: "unavailable", message: "Telegram could not be reached" };
  if (!(err instanceof GrammyError)) return undefined;
  if (err.error_code === 429)
    return {
      kind: "rate_limited",
      ...(err.parameters.retry_after !== undefined
        ? { retryAfterSec: err.parameters.retry_after }
        : {}),
      message: err.description,
    };
  if (err.error_code >= 500) return { kind: "unavailable", message: err.description };
  if (err.error_code === 400 && /message is too long|text is too long/i.test(err.description))
    return { kind: "too_long", message: err.description };
  return undefined;
}

/**
 * A Bot API call with Telegram's failures read for the delivery policy:
 * flood control and outages become RetryLater, "message is too long"
 * MessageTooLong.
 */
export const tgCall = platformCalls(telegramFailure);

/** Send Markdown `text` to the conversation of `origin` (split into messages Telegram accepts). */
export async function sendText(api: Api, origin: Origin, text: string): Promise<void> {
  for (const html of toTelegramHtml(text)) {
    await withRetryLater(() =>
      tgCall(() =>
        api.sendMessage(Number(origin.channelId), html, {
          parse_mode: "HTML",
          ...(origin.threadId ? { message_thread_id: Number(origin.threadId) } : {}),
        }),
      ),
    );
  }
}
