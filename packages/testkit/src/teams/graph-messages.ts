/**
 * Microsoft Graph's messages as the Teams emulator keeps them: every message
 * people and the bot post in channels and group chats, and the read routes a
 * bot with resource-specific consent calls — a channel's posts
 * (`GET /teams/{team}/channels/{channel}/messages`), one message
 * (`…/messages/{id}`), a post's replies (`…/messages/{id}/replies`) and a
 * group chat's messages (`GET /chats/{chat}/messages`) — newest first, at
 * most `$top` (1–50, 400 otherwise) a page, with `@odata.nextLink` to the
 * next. A team or chat whose consent was withdrawn (`ChannelMessage.Read.Group`,
 * `ChatMessage.Read.Chat`) answers 403, an unknown team or message 404.
 */

/** A message as Graph's chatMessage shows it. */
export interface GraphMessage {
  id: string;
  /** The channel or chat (a channel thread's conversation id without `;messageid=`). */
  chat: string;
  /** In a channel: the post a reply belongs to. */
  replyToId?: string;
  createdDateTime: string;
  deletedDateTime?: string;
  from:
    | { user: { id: string; displayName: string } }
    | { application: { id: string; displayName: string } };
  body: { contentType: "html"; content: string };
  attachments: { id: string; contentType: string; name?: string; contentUrl?: string }[];
}

const MAX_TOP = 50;

export class GraphMessageLog {
  readonly #log: GraphMessage[] = [];
  readonly #denied = new Set<string>();
  #last = 0;

  /** An id as Teams makes them: the millisecond it was posted (kept increasing). */
  nextId(): string {
    this.#last = Math.max(Date.now(), this.#last + 1);
    return String(this.#last);
  }

  /** Records a message posted in `conversationId` (a thread's id names its post). */
  add(
    conversationId: string,
    id: string,
    from: GraphMessage["from"],
    html: string,
    attachments: GraphMessage["attachments"] = [],
  ): void {
    if (this.#log.some((m) => m.id === id)) return;
    const [chat = conversationId, root] = conversationId.split(";messageid=");
    this.#log.push({
      id,
      chat,
      ...(root && root !== id ? { replyToId: root } : {}),
      createdDateTime: new Date(Number(id) || Date.now()).toISOString(),
      from,
      body: { contentType: "html", content: html },
      attachments,
    });
  }

  edit(id: string, html: string): void {
    const m = this.#log.find((x) => x.id === id);
    if (m) m.body = { contentType: "html", content: html };
  }

  remove(id: string): void {
    const m = this.#log.find((x) => x.id === id);
    if (m) m.deletedDateTime = new Date().toISOString();
  }

  /** Withdraws (or, with `false`, grants again) the bot's consent to read a channel's or chat's messages. */
  deny(chat: string, denied = true): void {
    if (denied) this.#denied.add(chat);
    else this.#denied.delete(chat);
  }

  /**
   * Answers a Graph messages route, or undefined when `path` is none of them.
   * `team` is the only team here; `base` is the Graph URL next links start with.
   */
  route(
    path: string,
    query: URLSearchParams,
    team: string,
    base: string,
  ): [number, unknown] | undefined {
    const channel =
      /^\/v1\.0\/teams\/([^/]+)\/channels\/([^/]+)\/messages(?:\/([^/]+)(\/replies)?)?$/.exec(path);
    const chat = /^\/v1\.0\/chats\/([^/]+)\/messages$/.exec(path);
    if (!channel && !chat) return undefined;
    const where = decodeURIComponent((channel ? channel[2] : chat?.[1]) ?? "");
    if (channel && decodeURIComponent(channel[1] ?? "") !== team)
      return notFound("No team found with Group Id");
    if (chat && !where.endsWith("@thread.v2")) return notFound("Chat not found");
    if (this.#denied.has(where))
      return [
        403,
        {
          error: {
            code: "Forbidden",
            message:
              "Missing role permissions on the request. API requires one of 'ChannelMessage.Read.Group, ChannelMessage.Read.All, ChatMessage.Read.Chat, Chat.Read.All'.",
          },
        },
      ];
    const live = this.#log.filter((m) => m.chat === where);
    const messageId = channel?.[3] ? decodeURIComponent(channel[3]) : undefined;
    if (messageId && !channel?.[4]) {
      const m = live.find((x) => x.id === messageId && !x.replyToId);
      return m ? [200, m] : notFound("The message was not found");
    }
    if (messageId && !live.some((x) => x.id === messageId && !x.replyToId))
      return notFound("The message was not found");
    const list = live
      .filter((m) => (messageId ? m.replyToId === messageId : chat ? true : !m.replyToId))
      .reverse();
    const top = Number(query.get("$top") ?? 20);
    if (!Number.isInteger(top) || top < 1 || top > MAX_TOP)
      return [400, { error: { code: "BadRequest", message: `$top must be 1 to ${MAX_TOP}` } }];
    const skip = Number(query.get("$skiptoken") ?? 0);
    if (!Number.isInteger(skip) || skip < 0)
      return [400, { error: { code: "BadRequest", message: "Invalid skip token" } }];
    const page = list.slice(skip, skip + top);
    const next = new URLSearchParams(query);
    next.set("$skiptoken", String(skip + top));
    return [
      200,
      {
        value: page,
        ...(skip + top < list.length
          ? { "@odata.nextLink": `${base}${path.slice("/v1.0".length)}?${next}` }
          : {}),
      },
    ];
  }
}

function notFound(message: string): [number, unknown] {
  return [404, { error: { code: "NotFound", message } }];
}
