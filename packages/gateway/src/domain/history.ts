import type { Origin } from "./origin.ts";

/**
 * Earlier messages of a conversation, as a platform shows them: what an agent
 * gets as context when it is mentioned in a thread, and what the
 * `channel_history` tool pages through. Platforms implement `ConversationHistory`
 * (Slack reads its API, Telegram its own log, REST the conversation's records);
 * the runtime knows history only by this.
 */

/** One earlier message. */
export interface HistoryMessage {
  /** The platform's id of the message (Slack ts, Telegram message id). */
  id: string;
  /** Display name of the author (or their id when the platform has no name). */
  author: string;
  /** The platform's id of the author, when it has one. */
  authorId?: string;
  /** Epoch ms. */
  at: number;
  text: string;
  /** Attachments, listed (names, types, sizes): never their contents. */
  files?: { name: string; mimeType?: string; size?: number }[];
  /** Written by this bot (the agent's own earlier replies). */
  fromAssistant?: boolean;
  /** Written by another bot or an integration. */
  fromBot?: boolean;
}

/** Which history: the origin's thread, or its channel's top level. */
export type HistoryScope = "thread" | "channel";

/** Where a turn stands: its message's origin and its conversation. */
export interface HistoryPlace {
  origin: Origin;
  conversationId: string;
}

export interface HistoryPage {
  /** Oldest first. */
  messages: HistoryMessage[];
  /** The platform's cursor for the next page; absent on the last one. */
  next?: string;
}

export interface RecentMessages {
  /** The newest messages before the origin's own, oldest first. */
  messages: HistoryMessage[];
  /** Older messages exist that were not read. */
  earlier: boolean;
}

export interface ConversationHistory {
  /**
   * The newest `limit` messages of the origin's thread before the origin's own
   * message (its `messageRef`), or none when the message does not continue a
   * thread (a top-level mention, a first message). With `after` (a message id
   * this method was given as `messageRef` before), only messages newer than it.
   */
  recent(place: HistoryPlace, opts: { limit: number; after?: string }): Promise<RecentMessages>;
  /** One page of the origin's thread or channel; `cursor` is a `next` this method returned. */
  page(
    place: HistoryPlace,
    req: { scope: HistoryScope; cursor?: string; limit: number },
  ): Promise<HistoryPage>;
}

/** A history the platform cannot give (a missing scope, a channel the bot left): said to the agent as is. */
export class HistoryUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HistoryUnavailable";
  }
}

/** What `newestBefore` read: the messages kept (oldest first) and why it stopped. */
export interface NewestBefore<T> {
  kept: T[];
  /** Messages older than those kept may exist (the limit was reached, or pages were left unread). */
  earlier: boolean;
  /** Every page was read, and neither the limit nor `since` stopped the reading. */
  exhausted: boolean;
}

/**
 * The newest messages before the one a turn answers, from pages a platform
 * gives newest first: at most `limit`, and none from `since` back (the last
 * turn's message). Shared by the platforms whose history comes in pages.
 */
export async function newestBefore<T>(opts: {
  /** One page, newest first, and the cursor of the next (none on the last). */
  read: (cursor: string | undefined) => Promise<{ messages: T[]; next?: string | undefined }>;
  /** Messages to pass over (the origin's own and anything newer). */
  skip: (m: T) => boolean;
  /** The message that ends the reading (`since`), not kept. */
  reached: (m: T) => boolean;
  limit: number;
  maxPages: number;
}): Promise<NewestBefore<T>> {
  const kept: T[] = [];
  let cursor: string | undefined;
  let stopped = false;
  let more = false;
  for (let pages = 0; !stopped && pages < opts.maxPages; pages++) {
    const page = await opts.read(cursor);
    for (const m of page.messages) {
      if (opts.skip(m)) continue;
      if (opts.reached(m)) {
        stopped = true;
        break;
      }
      if (kept.length === opts.limit) {
        stopped = more = true;
        break;
      }
      kept.push(m);
    }
    cursor = page.next;
    if (!cursor) break;
  }
  if (cursor && !stopped) more = true;
  return { kept: kept.reverse(), earlier: more, exhausted: !cursor && !stopped };
}
