import type { Logger } from "pino";
import { z } from "zod";
import {
  type ConversationHistory,
  type HistoryMessage,
  type HistoryPage,
  type HistoryPlace,
  HistoryUnavailable,
  type RecentMessages,
} from "../../domain/history.ts";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { filesOfMessage, type TgMessage } from "./webhook/parse.ts";

/**
 * Telegram's Bot API cannot read a chat's history, so the gateway keeps its
 * own: every group message the bot receives (all of them with privacy mode
 * off; with it on, only commands, mentions and replies to the bot) goes into
 * a log per chat, bounded to its newest `maxMessages` and dropped `retentionMs`
 * after the last one. A message that replies to another carries a copy of it
 * (Telegram sends the replied-to message along, the bot's own included), so a
 * reply chain can be followed. Private chats are not logged: every message
 * there is a turn of the person's own conversation.
 */

/** Longest text kept of one message. */
const MAX_TEXT = 8_000;

const Author = z.object({ id: z.number(), name: z.string(), isBot: z.boolean() });

/** One logged message (`chat:<chat id>` in the adapter's logs). */
export const LoggedMessage = z.object({
  id: z.number().int(),
  from: Author,
  /** Epoch ms. */
  at: z.number(),
  text: z.string(),
  files: z
    .array(
      z.object({
        name: z.string(),
        mimeType: z.string().optional(),
        size: z.number().optional(),
      }),
    )
    .default([]),
  /** Forum topic (message_thread_id), when the message is in one. */
  topic: z.number().int().optional(),
  /** The message this one replies to, as Telegram sent it along. */
  replyTo: z
    .object({
      id: z.number().int(),
      from: Author.optional(),
      at: z.number().optional(),
      text: z.string().optional(),
    })
    .optional(),
});
export type LoggedMessage = z.infer<typeof LoggedMessage>;

export interface ChatLogSettings {
  /** Messages kept per chat; 0 keeps none. */
  maxMessages: number;
  retentionMs: number;
}

const logName = (chatId: string) => `chat:${chatId}`;

type Author = z.infer<typeof Author>;

function authorOf(from: {
  id: number;
  is_bot?: boolean;
  first_name?: string;
  last_name?: string;
  username?: string;
}): Author {
  // As the sender of a turn is named (displayNameOf), so the agent can tell them apart in history.
  const name =
    from.username || [from.first_name, from.last_name].filter(Boolean).join(" ") || String(from.id);
  return { id: from.id, name, isBot: from.is_bot ?? false };
}

export class TelegramChatLog implements ConversationHistory {
  readonly #logs: AdapterContext["logs"];
  readonly #settings: ChatLogSettings;
  readonly #bot: { id: number };
  readonly #log: Logger;
  readonly #now: () => number;

  constructor(deps: {
    logs: AdapterContext["logs"];
    settings: ChatLogSettings;
    bot: { id: number };
    log: Logger;
    now?: () => number;
  }) {
    this.#logs = deps.logs;
    this.#settings = deps.settings;
    this.#bot = deps.bot;
    this.#log = deps.log;
    this.#now = deps.now ?? Date.now;
  }

  /** Log a group message the bot received (best effort: a failure never stops the message). */
  async record(msg: TgMessage): Promise<void> {
    if (msg.chat.type === "private" || !msg.from || this.#settings.maxMessages === 0) return;
    const reply = msg.reply_to_message;
    const entry: LoggedMessage = {
      id: msg.message_id,
      from: authorOf(msg.from),
      at: (msg.date ?? Math.floor(Date.now() / 1000)) * 1000,
      text: (msg.text ?? msg.caption ?? "").slice(0, MAX_TEXT),
      files: filesOfMessage(msg).map(({ name, mimeType, size }) => ({
        name,
        ...(mimeType ? { mimeType } : {}),
        ...(size !== undefined ? { size } : {}),
      })),
      ...(msg.is_topic_message && msg.message_thread_id !== undefined
        ? { topic: msg.message_thread_id }
        : {}),
      ...(reply && reply.forum_topic_created === undefined
        ? {
            replyTo: {
              id: reply.message_id,
              ...(reply.from ? { from: authorOf(reply.from) } : {}),
              ...(reply.date !== undefined ? { at: reply.date * 1000 } : {}),
              ...(reply.text || reply.caption
                ? { text: (reply.text ?? reply.caption ?? "").slice(0, MAX_TEXT) }
                : {}),
            },
          }
        : {}),
    };
    try {
      await this.#logs.append(logName(String(msg.chat.id)), JSON.stringify(entry), {
        maxLen: this.#settings.maxMessages,
        ttlMs: this.#settings.retentionMs,
      });
    } catch (err) {
      this.#log.warn({ err, chat: msg.chat.id }, "could not log a Telegram group message");
    }
  }

  async recent(
    place: HistoryPlace,
    opts: { limit: number; after?: string },
  ): Promise<RecentMessages> {
    const { origin } = place;
    if (origin.isDirect || !origin.messageRef) return { messages: [], earlier: false };
    const current = Number(origin.messageRef);
    const after = opts.after !== undefined ? Number(opts.after) : Number.NEGATIVE_INFINITY;
    const all = await this.#read(origin.channelId);
    // The reply chain is shown whole: what the message answers matters however old it is.
    const chain = new Set(replyChain(all, current).map((m) => m.id));
    const thread = threadOf(all, current, origin.threadId).filter(
      (m) => m.id < current && (m.id > after || chain.has(m.id)),
    );
    const kept = thread.slice(-opts.limit);
    return {
      messages: kept.map((m) => this.#toHistory(m)),
      earlier: thread.length > kept.length,
    };
  }

  async page(
    place: HistoryPlace,
    req: { scope: "thread" | "channel"; cursor?: string; limit: number },
  ): Promise<HistoryPage> {
    const { origin } = place;
    if (origin.isDirect) {
      throw new HistoryUnavailable(
        "Telegram does not let bots read a private chat's history; its messages are this conversation's own turns",
      );
    }
    const all = await this.#read(origin.channelId);
    const chosen =
      req.scope === "thread"
        ? threadOf(all, Number(origin.messageRef ?? Number.POSITIVE_INFINITY), origin.threadId)
        : all;
    // Newest page first, like a channel's history; each page reads oldest first.
    const skip = req.cursor !== undefined ? Number(req.cursor) : 0;
    if (!Number.isInteger(skip) || skip < 0)
      throw new HistoryUnavailable("the page cursor is not valid; start again without one");
    const end = chosen.length - skip;
    const start = Math.max(0, end - req.limit);
    const messages = chosen.slice(start, Math.max(0, end)).map((m) => this.#toHistory(m));
    return start > 0 ? { messages, next: String(skip + req.limit) } : { messages };
  }

  /** The chat's logged messages within the retention, oldest first, one per message id. */
  async #read(chatId: string): Promise<LoggedMessage[]> {
    const name = logName(chatId);
    const entries = await this.#logs.newest(name, { limit: this.#settings.maxMessages || 1 });
    // The log as a whole goes a retention after its last message; older entries of a
    // chat that keeps talking are never shown (and drop out as newer ones come).
    const since = this.#now() - this.#settings.retentionMs;
    const byId = new Map<number, LoggedMessage>();
    for (const e of entries) {
      const m = readRecord(
        LoggedMessage,
        e.data,
        { record: "Telegram chat log entry", key: `${name}/${e.id}` },
        this.#log,
      );
      if (m && m.at >= since && !byId.has(m.id)) byId.set(m.id, m);
    }
    return [...byId.values()].sort((a, b) => a.id - b.id);
  }

  #toHistory(m: LoggedMessage): HistoryMessage {
    const mine = m.from.id === this.#bot.id;
    return {
      id: String(m.id),
      author: m.from.name,
      authorId: String(m.from.id),
      at: m.at,
      text: m.text,
      ...(m.files.length ? { files: m.files } : {}),
      ...(mine ? { fromAssistant: true } : m.from.isBot ? { fromBot: true } : {}),
    };
  }
}

/**
 * The thread of message `current`: its reply chain (`replyChain`), and the
 * other messages of its forum topic or, outside topics, of the group's main
 * chat. Oldest first.
 */
function threadOf(
  all: readonly LoggedMessage[],
  current: number,
  topic: string | undefined,
): LoggedMessage[] {
  const out = new Map<number, LoggedMessage>();
  const inTopic = (m: LoggedMessage) =>
    topic !== undefined ? m.topic === Number(topic) : m.topic === undefined;
  for (const m of all) if (inTopic(m)) out.set(m.id, m);
  for (const m of replyChain(all, current)) out.set(m.id, m);
  return [...out.values()].sort((a, b) => a.id - b.id);
}

/**
 * The messages `current` replies to, nearest first: followed through the log,
 * and through the copy Telegram sent along for one the log does not have
 * (such as the bot's own), as far back as the log reaches.
 */
function replyChain(all: readonly LoggedMessage[], current: number): LoggedMessage[] {
  const byId = new Map(all.map((m) => [m.id, m]));
  const chain: LoggedMessage[] = [];
  const seen = new Set<number>([current]);
  let link = byId.get(current)?.replyTo;
  while (link && !seen.has(link.id) && seen.size <= 100) {
    seen.add(link.id);
    const logged = byId.get(link.id);
    if (logged) chain.push(logged);
    else if (link.text !== undefined && link.from)
      chain.push({ id: link.id, from: link.from, at: link.at ?? 0, text: link.text, files: [] });
    link = logged?.replyTo;
  }
  return chain;
}
