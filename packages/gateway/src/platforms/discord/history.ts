import type { API, APIMessage } from "@discordjs/core";
import { DiscordAPIError } from "@discordjs/rest";
import {
  type ConversationHistory,
  type HistoryMessage,
  type HistoryPage,
  type HistoryPlace,
  HistoryUnavailable,
  type RecentMessages,
} from "../../domain/history.ts";
import { RetryLater, withRetryLater } from "../shared/pacing.ts";
import { dcCall } from "./client.ts";

/** Discord returns at most this many messages per call. */
const MAX_PAGE = 100;
/** Rate limits waited out per call before the history is reported unavailable. */
const RATE_LIMIT_TRIES = 3;

/**
 * Discord's history, read by the gateway with the bot's token
 * (`GET /channels/{id}/messages`, the View Channel and Read Message History
 * permissions). A Discord thread is a channel of its own, so "the thread" of
 * a server message is the channel or thread it was posted in: the messages
 * before it there. A DM gives no context (its earlier messages are the
 * agent's own transcript); `channel_history` reads it. Only the origin's own
 * channel is ever read: the person wrote there, and the bot received it.
 */
export class DiscordHistory implements ConversationHistory {
  readonly #api: () => API;
  readonly #botId: () => string;

  constructor(api: () => API, botId: () => string) {
    this.#api = api;
    this.#botId = botId;
  }

  async recent(
    place: HistoryPlace,
    opts: { limit: number; after?: string },
  ): Promise<RecentMessages> {
    const { origin } = place;
    if (origin.isDirect || !origin.messageRef) return { messages: [], earlier: false };
    const limit = Math.min(Math.max(1, opts.limit), MAX_PAGE);
    // Newest first, before the message being answered; `after` (its last turn's message) bounds them.
    const raw = await this.#read(origin.channelId, { before: origin.messageRef, limit });
    const since = opts.after;
    const kept = since ? raw.filter((m) => BigInt(m.id) > BigInt(since)) : raw;
    return {
      messages: kept.reverse().map((m) => this.#convert(m)),
      earlier: kept.length === raw.length && raw.length === limit,
    };
  }

  async page(
    place: HistoryPlace,
    req: { scope: "thread" | "channel"; cursor?: string; limit: number },
  ): Promise<HistoryPage> {
    // Both scopes are the origin's channel: a thread is its own channel on Discord.
    const limit = Math.min(Math.max(1, req.limit), MAX_PAGE);
    const raw = await this.#read(place.origin.channelId, {
      limit,
      ...(req.cursor && /^\d{1,20}$/.test(req.cursor) ? { before: req.cursor } : {}),
    });
    const messages = raw
      .slice()
      .reverse()
      .map((m) => this.#convert(m));
    const oldest = raw.at(-1);
    return raw.length === limit && oldest ? { messages, next: oldest.id } : { messages };
  }

  async #read(channelId: string, query: { before?: string; limit: number }): Promise<APIMessage[]> {
    try {
      return await withRetryLater(
        () => dcCall(() => this.#api().channels.getMessages(channelId, query)),
        { attempts: RATE_LIMIT_TRIES, maxWaitMs: 30_000, deadlineMs: 60_000 },
      );
    } catch (err) {
      throw unavailable(err);
    }
  }

  #convert(m: APIMessage): HistoryMessage {
    const mine = m.author.id === this.#botId();
    const files = m.attachments.map((a) => ({
      name: a.filename,
      ...(a.content_type ? { mimeType: a.content_type } : {}),
      size: a.size,
    }));
    return {
      id: m.id,
      author: m.author.global_name ?? m.author.username,
      authorId: m.author.id,
      at: Date.parse(m.timestamp),
      // Mentions read as names where Discord says who they are: `<@123>` → `@Ada`.
      text: m.content.replace(/<@!?(\d+)>/g, (all, id: string) => {
        const user = m.mentions.find((u) => u.id === id);
        return user ? `@${user.global_name ?? user.username}` : all;
      }),
      ...(files.length ? { files } : {}),
      ...(mine ? { fromAssistant: true } : m.author.bot || m.webhook_id ? { fromBot: true } : {}),
    };
  }
}

/** Discord's refusals said plainly; anything else passes as a failure (no internals). */
function unavailable(err: unknown): Error {
  if (err instanceof RetryLater)
    return new HistoryUnavailable("Discord is rate limiting history reads; try again in a minute");
  if (err instanceof DiscordAPIError && (err.code === 50001 || err.code === 50013))
    return new HistoryUnavailable(
      "the Discord bot may not read this channel's history (it needs the View Channel and Read Message History permissions); a server admin can grant them",
    );
  return err instanceof Error ? err : new Error(String(err));
}
