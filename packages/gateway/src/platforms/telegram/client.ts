import { type Api, GrammyError } from "grammy";
import type { Origin } from "../../domain/origin.ts";
import { rateLimitedCalls } from "../shared/pacing.ts";
import { toTelegramHtml } from "./html.ts";

/** A Bot API call with Telegram's flood control turned into RetryLater. */
export const tgCall = rateLimitedCalls((err) =>
  err instanceof GrammyError && err.error_code === 429
    ? {
        ...(err.parameters.retry_after !== undefined
          ? { retryAfterSec: err.parameters.retry_after }
          : {}),
        message: err.description,
      }
    : undefined,
);

/** Send Markdown `text` to the conversation of `origin` (split into messages Telegram accepts). */
export async function sendText(api: Api, origin: Origin, text: string): Promise<void> {
  for (const html of toTelegramHtml(text)) {
    await tgCall(() =>
      api.sendMessage(Number(origin.channelId), html, {
        parse_mode: "HTML",
        ...(origin.threadId ? { message_thread_id: Number(origin.threadId) } : {}),
      }),
    );
  }
}
