import type { Context } from "grammy";
import type { Logger } from "pino";
import type { AdapterContext } from "../shared/adapter.ts";
import { parseBindCommand, runBindCommand } from "../shared/bind.ts";
import { inboundMessage, type SubmitInboundDeps, submitInbound } from "../shared/inbound.ts";
import type { TelegramChatLog } from "./chat-log.ts";
import type { TelegramCommands } from "./commands.ts";
import type { TelegramDirectory } from "./directory.ts";
import { classifyMessage, filesOfMessage, originOf, type TgMessage } from "./webhook/parse.ts";

export interface TelegramMessagesDeps {
  me: { id: number; username: string };
  /** The bot's id in lobu.toml ("" for TELEGRAM_BOT_TOKEN's): the workspace of its origins. */
  botId: string;
  settings: { agentId?: string | undefined };
  commands: Pick<TelegramCommands, "handle">;
  /** What the access check may ask about a sender (bots, group admins). */
  directory: TelegramDirectory;
  /** `/bind <agent>`: a group administrator binds the group. */
  binder: Pick<AdapterContext, "bindChannel">;
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
  const origin = originOf({ ...msg, from: msg.from }, m, deps.botId);
  const bind =
    m.command?.name === "bind" || m.command?.name === "unbind"
      ? parseBindCommand(`${m.command.name} ${m.command.args}`)
      : undefined;
  if (bind) {
    const { inbound, directory } = deps;
    const from = msg.from;
    const isAdmin = async () => (await directory.admins(msg.chat.id))?.has(from.id) ?? false;
    inbound.background.run(
      async () => inbound.notify(origin, await runBindCommand(deps.binder, origin, bind, isAdmin)),
      "could not bind a group",
    );
    return;
  }
  if (!m.ambient && (await deps.commands.handle(origin, m.command))) return;
  const message = inboundMessage({
    origin,
    text: m.text,
    files: filesOfMessage(msg),
    // A redelivered update (webhook retry, polling after a restart) has the same update_id.
    eventId: `${me.id}:${c.update.update_id}`,
    agentId: deps.settings.agentId,
    facts: deps.directory.facts({ chatId: msg.chat.id, isPrivate: m.isPrivate, from: msg.from }),
    ...(m.ambient ? { ambient: true } : {}),
  });
  if (message) await submitInbound(deps.inbound, message);
}
