import type { Api, Context } from "grammy";
import type { Logger } from "pino";
import type { AdapterContext } from "../shared/adapter.ts";
import { answerClick, stopClick } from "../shared/interactivity.ts";
import { tgCall } from "./client.ts";
import { parseCallbackData } from "./keyboard.ts";
import { displayNameOf } from "./webhook/parse.ts";

export interface InteractivityDeps {
  api: Api;
  /** The bot's id in lobu.toml ("" for TELEGRAM_BOT_TOKEN's): the clicker's workspace. */
  botId: string;
  ctx: Pick<AdapterContext, "answer" | "state" | "stop">;
  views: { hasOpenCard(requestId: string): boolean };
  log: Logger;
}

/**
 * A click on an inline keyboard button (callback_query). Telegram wants
 * every callback query answered (the button spins until then): a refused
 * answer as an alert to the clicker alone, a taken one as a short toast.
 */
export async function handleCallbackQuery(deps: InteractivityDeps, c: Context): Promise<void> {
  const query = c.callbackQuery;
  if (!query?.data) return;
  let answered = false;
  const answerQuery = async (text?: string, alert = false) => {
    if (answered) return;
    answered = true;
    await c
      .answerCallbackQuery(text ? { text: text.slice(0, 200), show_alert: alert } : {})
      .catch((err) => deps.log.debug({ err }, "answerCallbackQuery failed"));
  };
  try {
    const who = {
      platform: "telegram",
      ...(deps.botId ? { workspace: deps.botId } : {}),
      userId: String(query.from.id),
      userName: displayNameOf(query.from),
    };
    const tell = (text: string, ok: boolean) => answerQuery(text, !ok);
    if (await stopClick(deps.ctx, query.data, who, tell)) return;
    const parsed = await parseCallbackData(query.data, deps.ctx.state, deps.log);
    if (!parsed) {
      await answerQuery("This button is no longer active.", true);
      return;
    }
    const message = query.message;
    const label =
      message && "reply_markup" in message
        ? message.reply_markup?.inline_keyboard
            .flat()
            .find((b) => "callback_data" in b && b.callback_data === query.data)?.text
        : undefined;
    await answerClick(
      deps,
      { ...parsed, ...(label !== undefined ? { label } : {}), who },
      {
        refused: (reason) => answerQuery(`⚠️ ${reason}`, true),
        accepted: (shown) => answerQuery(`${shown} ✓`),
        closeCard: async (line) => {
          if (!message || !("text" in message) || !message.text) return;
          // The card's text as Telegram keeps it (its entities), with the outcome below.
          await tgCall(() =>
            deps.api.editMessageText(
              message.chat.id,
              message.message_id,
              `${message.text}\n\n${line.replace(/\*\*/g, "")}`,
              { ...(message.entities ? { entities: message.entities } : {}) },
            ),
          ).catch((err) => deps.log.warn({ err }, "could not update the answered card"));
        },
      },
    );
  } finally {
    await answerQuery();
  }
}
