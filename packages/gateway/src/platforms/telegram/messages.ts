import type { Context } from "grammy";
import type { Logger } from "pino";
import { inboundMessage, type SubmitInboundDeps, submitInbound } from "../shared/inbound.ts";
import type { TelegramChatLog } from "./chat-log.ts";
import type { TelegramCommands } from "./commands.ts";
import type { TelegramSettings } from "./config.ts";
import { classifyMessage, filesOfMessage, originOf, type TgMessage } from "./webhook/parse.ts";

export interface TelegramMessagesDeps {
  me: { id: number; username: string };
  settings: Pick<TelegramSettings, "agentId">;
  commands: Pick<TelegramCommands, "handle">;
  /** How a message is stored (its ack policy, how a refusal is explained). */
  inbound: SubmitInboundDeps;
  /** Where group messages are logged as the chat's history. */
  chatLog: Pick<TelegramChatLog, "record">;
  log: Logger;
}

/**
 * A message update: the bot's own commands, or a message for the agent
 * (private chats always; groups when the bot is addressed).
 */
export async function handleMessage(deps: TelegramMessagesDeps, c: Context): Promise<void> {
  const msg = c.message as TgMessage | undefined;
  if (!msg?.from) return;
  // Every group message the bot sees is history, whether it is for the bot or not.
  await deps.chatLog.record(msg);
  const { me } = deps;
  const m = classifyMessage(msg, me);
  if (m.kind === "ignore") {
    deps.log.debug({ reason: m.reason }, "ignoring Telegram message");
    return;
  }
  const origin = originOf({ ...msg, from: msg.from }, m);
  if (await deps.commands.handle(origin, m.command)) return;
  const message = inboundMessage({
    origin,
    text: m.text,
    files: filesOfMessage(msg),
    // A redelivered update (webhook retry, polling after a restart) has the same update_id.
    eventId: `${me.id}:${c.update.update_id}`,
    agentId: deps.settings.agentId,
  });
  if (message) await submitInbound(deps.inbound, message);
}
