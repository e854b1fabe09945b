import { z } from "zod";
import {
  type ConversationHistory,
  type HistoryMessage,
  type HistoryPage,
  type HistoryPlace,
  type HistoryScope,
  HistoryUnavailable,
  newestBefore,
  type RecentMessages,
} from "../../domain/history.ts";
import type { ConversationRef, Conversations } from "./conversations.ts";
import type { GraphTokens } from "./graph-tokens.ts";
import { htmlToText } from "./html-text.ts";

/** Graph answers at most this many messages per call (`$top`). */
const MAX_PAGE = 50;
/** Pages read at most for one turn's context (the newest come first). */
const MAX_CONTEXT_PAGES = 4;

const ChatMessage = z
  .object({
    id: z.string().max(64),
    messageType: z.string().max(64).optional(),
    createdDateTime: z.string().max(64).nullish(),
    deletedDateTime: z.string().max(64).nullish(),
    from: z
      .object({
        user: z
          .object({ id: z.string().max(64).nullish(), displayName: z.string().max(256).nullish() })
          .loose()
          .nullish(),
        application: z
          .object({ id: z.string().max(64).nullish(), displayName: z.string().max(256).nullish() })
          .loose()
          .nullish(),
      })
      .loose()
      .nullish(),
    body: z
      .object({ contentType: z.string().max(16).optional(), content: z.string().nullish() })
      .loose()
      .optional(),
    attachments: z
      .array(
        z
          .object({
            contentType: z.string().max(255).nullish(),
            name: z.string().max(1024).nullish(),
          })
          .loose(),
      )
      .max(100)
      .default([]),
  })
  .loose();
type ChatMessage = z.infer<typeof ChatMessage>;

const Collection = z.object({
  value: z.array(z.unknown()).max(1000),
  "@odata.nextLink": z.string().max(4000).optional(),
});

/** Where a conversation's messages are in Graph. */
type Where =
  | { kind: "channel"; tenant: string; team: string; channel: string }
  | { kind: "chat"; tenant: string; chat: string };

/**
 * Teams' history, read by the gateway through Microsoft Graph with the bot's
 * application token for the message's tenant (graph-tokens.ts), under the
 * resource-specific consent permissions a team or chat grants when the app
 * is installed there: `ChannelMessage.Read.Group` (a team's channels) and
 * `ChatMessage.Read.Chat` (a group chat). In a channel, "the thread" of a
 * reply is its root message and the replies before it
 * (`/teams/{team}/channels/{channel}/messages/{root}` and `…/replies`); a
 * new post starts a thread and has none. In a group chat it is the chat's
 * messages before it (`/chats/{chat}/messages`). A 1:1 chat gives none: its
 * earlier messages are the agent's own transcript. Only the origin's own
 * channel or chat is ever read, with the team, channel and tenant its signed
 * activity named (kept by conversations.ts).
 */
export class TeamsHistory implements ConversationHistory {
  readonly #tokens: GraphTokens;
  readonly #graphUrl: string;
  readonly #appId: string;
  readonly #conversations: () => Conversations;

  constructor(opts: {
    tokens: GraphTokens;
    graphUrl: string;
    appId: string;
    conversations: () => Conversations;
  }) {
    this.#tokens = opts.tokens;
    this.#graphUrl = opts.graphUrl;
    this.#appId = opts.appId;
    this.#conversations = opts.conversations;
  }

  async recent(
    place: HistoryPlace,
    opts: { limit: number; after?: string },
  ): Promise<RecentMessages> {
    const { origin } = place;
    const none = { messages: [], earlier: false };
    const before = origin.messageRef;
    if (origin.isDirect || !before) return none;
    const where = await this.#where(place);
    const root = where.kind === "channel" ? origin.threadId : undefined;
    // A new channel post starts its thread: nothing came before it there.
    if (where.kind === "channel" && (!root || root === before)) return none;
    const limit = Math.max(1, opts.limit);
    const since = opts.after;
    // Newest first: read until `limit` messages before the origin's, or `since`.
    const read = await newestBefore<ChatMessage>({
      read: async (next) => {
        const page = await this.#get(
          next ?? this.#firstUrl(where, "thread", root, limit),
          where.tenant,
        );
        return { messages: newestFirst(page.messages), next: page.next };
      },
      skip: (m) => !older(m.id, before),
      reached: (m) => since !== undefined && !older(since, m.id),
      limit,
      maxPages: MAX_CONTEXT_PAGES,
    });
    const kept = read.kept;
    let earlier = read.earlier;
    // The thread's root is not among its replies: it comes first (oldest).
    if (read.exhausted && where.kind === "channel" && root && (!since || older(since, root))) {
      if (kept.length === limit) earlier = true;
      else {
        const first = await this.#rootOf(where, root);
        if (first) kept.unshift(first);
      }
    }
    return { messages: this.#convert(kept), earlier };
  }

  async page(
    place: HistoryPlace,
    req: { scope: HistoryScope; cursor?: string; limit: number },
  ): Promise<HistoryPage> {
    const { origin } = place;
    if (origin.isDirect)
      throw new HistoryUnavailable(
        "a Teams 1:1 chat's earlier messages are this conversation's own transcript; there is no other history to read",
      );
    const where = await this.#where(place);
    const limit = Math.min(Math.max(1, req.limit), MAX_PAGE);
    const root = origin.threadId ?? origin.messageRef;
    let url: string;
    if (req.cursor) {
      // Only Graph's own next links, on the configured Graph host, ever get the token.
      if (!req.cursor.startsWith(`${this.#graphUrl}/`))
        throw new HistoryUnavailable("the page cursor is not valid; start again without one");
      url = req.cursor;
    } else url = this.#firstUrl(where, req.scope, root, limit);
    const page = await this.#get(url, where.tenant);
    const messages = newestFirst(page.messages);
    // A thread's last page (its oldest replies) ends with its root message.
    if (!page.next && where.kind === "channel" && req.scope === "thread" && root) {
      const first = await this.#rootOf(where, root);
      if (first) messages.push(first);
    }
    return {
      messages: this.#convert(messages.reverse()),
      ...(page.next ? { next: page.next } : {}),
    };
  }

  async #where(place: HistoryPlace): Promise<Where> {
    let ref: ConversationRef;
    try {
      ref = await this.#conversations().get(place.origin.channelId);
    } catch {
      throw new HistoryUnavailable("no message from this Teams conversation reached the gateway");
    }
    const tenant = ref.tenantId ?? place.origin.workspace ?? "";
    if (!tenant) throw new HistoryUnavailable("Teams did not say which tenant this chat is in");
    if (ref.graphChannel)
      return {
        kind: "channel",
        tenant,
        team: ref.graphChannel.team,
        channel: ref.graphChannel.channel,
      };
    // A group chat's conversation id is its Graph chat id.
    if (place.origin.channelId.startsWith("19:") && place.origin.channelId.endsWith("@thread.v2"))
      return { kind: "chat", tenant, chat: place.origin.channelId };
    throw new HistoryUnavailable("Teams did not say which team and channel this message is in");
  }

  #firstUrl(where: Where, scope: HistoryScope, root: string | undefined, top: number): string {
    const n = Math.min(top, MAX_PAGE);
    if (where.kind === "chat")
      return `${this.#graphUrl}/chats/${enc(where.chat)}/messages?$top=${n}&$orderby=createdDateTime%20desc`;
    const channel = `${this.#graphUrl}/teams/${enc(where.team)}/channels/${enc(where.channel)}/messages`;
    return scope === "thread" && root
      ? `${channel}/${enc(root)}/replies?$top=${n}`
      : `${channel}?$top=${n}`;
  }

  async #rootOf(
    where: Extract<Where, { kind: "channel" }>,
    root: string,
  ): Promise<ChatMessage | undefined> {
    const url = `${this.#graphUrl}/teams/${enc(where.team)}/channels/${enc(where.channel)}/messages/${enc(root)}`;
    const body = await this.#fetch(url, where.tenant);
    const m = ChatMessage.safeParse(body);
    return m.success && shown(m.data) ? m.data : undefined;
  }

  async #get(url: string, tenant: string): Promise<{ messages: ChatMessage[]; next?: string }> {
    const parsed = Collection.safeParse(await this.#fetch(url, tenant));
    if (!parsed.success) throw new Error("Microsoft Graph answered messages in an unknown shape");
    const messages = parsed.data.value.flatMap((v) => {
      const m = ChatMessage.safeParse(v);
      return m.success && shown(m.data) ? [m.data] : [];
    });
    const next = parsed.data["@odata.nextLink"];
    return next?.startsWith(`${this.#graphUrl}/`) ? { messages, next } : { messages };
  }

  async #fetch(url: string, tenant: string): Promise<unknown> {
    const token = await this.#tokens.get(tenant).catch(() => {
      throw new HistoryUnavailable(
        "the bot could not get a Microsoft Graph token for this tenant (its app may not be consented there)",
      );
    });
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${token}` },
      redirect: "error",
      signal: AbortSignal.timeout(30_000),
    }).catch(() => {
      throw new Error("could not reach Microsoft Graph");
    });
    if (res.ok) return res.json().catch(() => undefined);
    await res.body?.cancel();
    if (res.status === 401 || res.status === 403)
      throw new HistoryUnavailable(
        "the Teams bot may not read this conversation's messages (a team owner grants its app ChannelMessage.Read.Group, a chat's members ChatMessage.Read.Chat, when it is installed)",
      );
    if (res.status === 404)
      throw new HistoryUnavailable("Microsoft Graph does not know this conversation or thread");
    if (res.status === 429)
      throw new HistoryUnavailable(
        "Microsoft Graph is rate limiting history reads; try again in a minute",
      );
    throw new Error(`Microsoft Graph refused the messages (${res.status})`);
  }

  #convert(list: ChatMessage[]): HistoryMessage[] {
    return list.map((m) => {
      const app = m.from?.application;
      const user = m.from?.user;
      const mine = !!app?.id && app.id === this.#appId;
      const files = m.attachments.flatMap((a) =>
        // Cards and message references are not files; shared files are `reference`s.
        a.contentType === "reference" && a.name ? [{ name: a.name }] : [],
      );
      const html = (m.body?.contentType ?? "html") === "html";
      const content = m.body?.content ?? "";
      return {
        id: m.id,
        author: user?.displayName ?? app?.displayName ?? user?.id ?? app?.id ?? "unknown",
        ...((user?.id ?? app?.id) ? { authorId: (user?.id ?? app?.id) as string } : {}),
        at: Date.parse(m.createdDateTime ?? "") || 0,
        text: html ? htmlToText(content) : content,
        ...(files.length ? { files } : {}),
        ...(mine ? { fromAssistant: true } : app ? { fromBot: true } : {}),
      };
    });
  }
}

const enc = encodeURIComponent;

/** People's messages only: not system events (someone joined), not deleted ones. */
function shown(m: ChatMessage): boolean {
  return (m.messageType ?? "message") === "message" && !m.deletedDateTime;
}

/** Graph's message ids are the milliseconds they were posted at: `a` came before `b`. */
function older(a: string, b: string): boolean {
  return /^\d{1,20}$/.test(a) && /^\d{1,20}$/.test(b) ? BigInt(a) < BigInt(b) : a < b;
}

/** Sorted newest first, whatever order Graph gave them in. */
function newestFirst(list: ChatMessage[]): ChatMessage[] {
  return list.slice().sort((x, y) => (older(x.id, y.id) ? 1 : older(y.id, x.id) ? -1 : 0));
}
