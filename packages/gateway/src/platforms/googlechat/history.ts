import type { chat_v1 } from "@googleapis/chat";
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
import { type ChatApi, gcCall } from "./client.ts";

/** Messages read per call (spaces.messages.list allows up to 1,000). */
const MAX_PAGE = 100;
/** Pages read at most for one turn's context (the newest come first). */
const MAX_CONTEXT_PAGES = 5;
/** A thread's resource name, as the filter takes it (never anything quoted or spaced). */
const THREAD_NAME = /^spaces\/[A-Za-z0-9_-]{1,100}\/threads\/[A-Za-z0-9_.-]{1,200}$/;
/** The app's own messages, as Chat names their sender to it. */
const APP_SENDER = "users/app";

interface GaxiosLike {
  status?: number;
  response?: { status?: number };
}

/**
 * Google Chat's history, read by the gateway with `spaces.messages.list` as
 * the app's service account (app authentication, scope
 * `chat.app.messages.readonly`, a token apart from the one it posts with).
 * "The thread" of a space message is its thread (`filter=thread.name = …`,
 * newest first by createTime): the messages before it. A DM gives no context
 * (its earlier messages are the agent's own transcript); `channel_history`
 * reads it. Only the origin's own space and thread are ever read. The scope
 * needs a Workspace admin's approval: without it Chat answers 403 and the
 * agent is told so plainly.
 */
export class GoogleChatHistory implements ConversationHistory {
  readonly #api: ChatApi;

  constructor(api: ChatApi) {
    this.#api = api;
  }

  async recent(
    place: HistoryPlace,
    opts: { limit: number; after?: string },
  ): Promise<RecentMessages> {
    const { origin } = place;
    const none = { messages: [], earlier: false };
    if (origin.isDirect || !origin.messageRef || !origin.threadId) return none;
    const thread = origin.threadId;
    const limit = Math.max(1, opts.limit);
    // Newest first: the message itself and what is newer than it are passed over.
    let seen = false;
    const { kept, earlier } = await newestBefore<chat_v1.Schema$Message>({
      read: (token) =>
        this.#list(origin.channelId, {
          thread,
          pageSize: Math.min(limit + 1, MAX_PAGE),
          ...(token ? { pageToken: token } : {}),
        }),
      skip: (m) => {
        if (seen) return false;
        seen = m.name === origin.messageRef;
        return true;
      },
      reached: (m) => opts.after !== undefined && m.name === opts.after,
      limit,
      maxPages: MAX_CONTEXT_PAGES,
    });
    return { messages: kept.map(convert), earlier };
  }

  async page(
    place: HistoryPlace,
    req: { scope: HistoryScope; cursor?: string; limit: number },
  ): Promise<HistoryPage> {
    const { origin } = place;
    // A space's thread, or the whole space (a DM is one conversation).
    const thread = req.scope === "thread" && !origin.isDirect ? origin.threadId : undefined;
    const page = await this.#list(origin.channelId, {
      ...(thread ? { thread } : {}),
      pageSize: Math.min(Math.max(1, req.limit), MAX_PAGE),
      ...(req.cursor ? { pageToken: req.cursor } : {}),
    });
    return {
      messages: page.messages.slice().reverse().map(convert),
      ...(page.next ? { next: page.next } : {}),
    };
  }

  async #list(
    space: string,
    q: { thread?: string; pageSize: number; pageToken?: string },
  ): Promise<{ messages: chat_v1.Schema$Message[]; next?: string }> {
    if (q.thread && !THREAD_NAME.test(q.thread))
      throw new HistoryUnavailable(
        "Google Chat named this thread in a form the gateway does not read",
      );
    try {
      const res = await gcCall(() =>
        this.#api.spaces.messages.list({
          parent: space,
          orderBy: "createTime desc",
          pageSize: q.pageSize,
          ...(q.thread ? { filter: `thread.name = "${q.thread}"` } : {}),
          ...(q.pageToken ? { pageToken: q.pageToken } : {}),
        }),
      );
      const next = res.data.nextPageToken || undefined;
      return { messages: res.data.messages ?? [], ...(next ? { next } : {}) };
    } catch (err) {
      throw unavailable(err);
    }
  }
}

function convert(m: chat_v1.Schema$Message): HistoryMessage {
  const sender = m.sender ?? {};
  const files = (m.attachment ?? []).map((a) => ({
    name: a.contentName ?? "attachment",
    ...(a.contentType ? { mimeType: a.contentType } : {}),
  }));
  return {
    id: m.name ?? "",
    author: sender.displayName || sender.name || "unknown",
    ...(sender.name ? { authorId: sender.name } : {}),
    at: Date.parse(m.createTime ?? "") || 0,
    text: m.text ?? "",
    ...(files.length ? { files } : {}),
    ...(sender.name === APP_SENDER
      ? { fromAssistant: true }
      : sender.type === "BOT"
        ? { fromBot: true }
        : {}),
  };
}

/** Chat's refusals said plainly; anything else passes as a failure (no internals). */
function unavailable(err: unknown): Error {
  if (err instanceof HistoryUnavailable) return err;
  const e = (typeof err === "object" && err !== null ? err : {}) as GaxiosLike;
  const status = e.response?.status ?? e.status;
  const message = err instanceof Error ? err.message : "";
  // The token grant refused the scope, or Chat refused the read: the admin has not approved it.
  if (status === 401 || status === 403 || /invalid_scope|unauthorized_client/.test(message))
    return new HistoryUnavailable(
      "the Google Chat app may not read this space's messages (a Workspace admin must approve its chat.app.messages.readonly scope)",
    );
  if (status === 404)
    return new HistoryUnavailable("Google Chat does not know this space, or the app is not in it");
  if (status === 429)
    return new HistoryUnavailable(
      "Google Chat is rate limiting history reads; try again in a minute",
    );
  return err instanceof Error ? err : new Error(String(err));
}
