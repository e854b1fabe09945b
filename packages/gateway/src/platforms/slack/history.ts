import type { ConversationsHistoryResponse, ConversationsRepliesResponse } from "@slack/web-api";
import {
  type ConversationHistory,
  type HistoryMessage,
  type HistoryPage,
  type HistoryPlace,
  HistoryUnavailable,
  type RecentMessages,
} from "../../domain/history.ts";
import type { Origin } from "../../domain/origin.ts";
import { RetryLater, withRetryLater } from "../shared/pacing.ts";
import { slackCall, slackErrorCode } from "./client.ts";
import type { UserNames } from "./user-names.ts";
import type { Workspace, Workspaces } from "./workspaces.ts";

type SlackMessage = NonNullable<ConversationsRepliesResponse["messages"]>[number] &
  NonNullable<ConversationsHistoryResponse["messages"]>[number];

/** Replies read per call, and calls at most for one thread's context (Tier 3: 50 a minute). */
const PAGE = 200;
const MAX_PAGES = 10;
/** Rate limits waited out per call before the history is reported unavailable. */
const RATE_LIMIT_TRIES = 3;
/** Distinct people named per page (users.info each, cached). */
const MAX_NAMES = 50;
/** Messages Slack writes about the channel itself (joins, topic changes): not part of a discussion. */
const HOUSEKEEPING = new Set([
  "channel_join",
  "channel_leave",
  "channel_topic",
  "channel_purpose",
  "channel_name",
  "channel_archive",
  "channel_unarchive",
  "group_join",
  "group_leave",
  "group_topic",
  "group_purpose",
  "group_name",
  "bot_add",
  "bot_remove",
  "pinned_item",
  "unpinned_item",
]);

/**
 * Slack's history, read with the workspace's bot token: a thread with
 * `conversations.replies`, a channel's top level with `conversations.history`
 * (scopes `channels:history`, `groups:history`, `im:history`, `mpim:history`).
 * Authors are shown by display name; the bot's own messages as the assistant's.
 */
export class SlackHistory implements ConversationHistory {
  readonly #workspaces: Workspaces;
  readonly #names: UserNames;

  constructor(deps: { workspaces: Workspaces; names: UserNames }) {
    this.#workspaces = deps.workspaces;
    this.#names = deps.names;
  }

  async recent(
    place: HistoryPlace,
    opts: { limit: number; after?: string },
  ): Promise<RecentMessages> {
    const { origin } = place;
    const { threadId, messageRef } = origin;
    // A top-level message starts its thread: there is nothing before it.
    if (!threadId || !messageRef || threadId === messageRef)
      return { messages: [], earlier: false };
    const ws = await this.#workspace(origin);
    let kept: SlackMessage[] = [];
    let earlier = false;
    let cursor: string | undefined;
    for (let pages = 0; pages < MAX_PAGES; pages++) {
      const res = await call(() =>
        ws.client.conversations.replies({
          channel: origin.channelId,
          ts: threadId,
          latest: messageRef,
          ...(opts.after ? { oldest: opts.after } : {}),
          inclusive: false,
          limit: PAGE,
          ...(cursor ? { cursor } : {}),
        }),
      );
      // The parent always comes first, whatever the range: keep only what is in it.
      kept.push(
        ...(res.messages ?? []).filter(
          (m) => before(m.ts, messageRef) && (!opts.after || before(opts.after, m.ts as string)),
        ),
      );
      if (kept.length > opts.limit) {
        earlier = true;
        kept = kept.slice(-opts.limit);
      }
      cursor = res.has_more ? res.response_metadata?.next_cursor || undefined : undefined;
      if (!cursor) break;
    }
    // A thread longer than we read: the newest replies were not reached.
    if (cursor) earlier = true;
    return { messages: await this.#convert(ws, kept), earlier };
  }

  async page(
    place: HistoryPlace,
    req: { scope: "thread" | "channel"; cursor?: string; limit: number },
  ): Promise<HistoryPage> {
    const { origin } = place;
    const ws = await this.#workspace(origin);
    const common = {
      channel: origin.channelId,
      limit: req.limit,
      ...(req.cursor ? { cursor: req.cursor } : {}),
    };
    const thread = origin.threadId ?? origin.messageRef;
    const res =
      req.scope === "thread" && thread
        ? await call(() => ws.client.conversations.replies({ ...common, ts: thread }))
        : await call(() => ws.client.conversations.history(common));
    // conversations.history pages newest first; a page reads oldest first.
    const raw = req.scope === "thread" && thread ? res.messages : res.messages?.slice().reverse();
    const next = res.has_more ? res.response_metadata?.next_cursor || undefined : undefined;
    const messages = await this.#convert(ws, raw ?? []);
    return next ? { messages, next } : { messages };
  }

  async #workspace(origin: Origin): Promise<Workspace> {
    const ws = await this.#workspaces.get(origin.workspace);
    if (!ws) throw new HistoryUnavailable("the gateway has no bot token for this Slack workspace");
    return ws;
  }

  async #convert(ws: Workspace, messages: readonly SlackMessage[]): Promise<HistoryMessage[]> {
    const people = new Set<string>();
    for (const m of messages) {
      if (m.user) people.add(m.user);
      for (const id of mentionsIn(m.text ?? "")) people.add(id);
    }
    const names = new Map<string, string>();
    for (const id of [...people].slice(0, MAX_NAMES)) {
      const name = id === ws.botUserId ? "you" : await this.#names.of(ws, id);
      if (name) names.set(id, name);
    }
    return messages
      .filter((m) => m.ts && !HOUSEKEEPING.has(m.subtype ?? "") && (m.text || m.files?.length))
      .map((m) => toHistoryMessage(ws, m, names));
  }
}

function toHistoryMessage(
  ws: Workspace,
  m: SlackMessage,
  names: Map<string, string>,
): HistoryMessage {
  const mine = m.user === ws.botUserId || (ws.botId !== undefined && m.bot_id === ws.botId);
  const bot = !mine && (m.bot_id !== undefined || m.subtype === "bot_message");
  const author = m.user
    ? (names.get(m.user) ?? m.user)
    : (m.bot_profile?.name ?? m.username ?? "a bot");
  const files = (m.files ?? []).map((f) => ({
    name: f.name ?? f.title ?? "file",
    ...(f.mimetype ? { mimeType: f.mimetype } : {}),
    ...(f.size !== undefined ? { size: f.size } : {}),
  }));
  return {
    id: m.ts as string,
    author,
    ...(m.user ? { authorId: m.user } : {}),
    at: Math.round(Number(m.ts) * 1000),
    // Mentions read as names: `<@U123>` → `@Alice`.
    text: (m.text ?? "").replace(/<@([UW][A-Z0-9]+)>/g, (all, id: string) =>
      names.has(id) ? `@${names.get(id)}` : all,
    ),
    ...(files.length ? { files } : {}),
    ...(mine ? { fromAssistant: true } : bot ? { fromBot: true } : {}),
  };
}

function mentionsIn(text: string): string[] {
  return [...text.matchAll(/<@([UW][A-Z0-9]+)>/g)].map((m) => m[1] as string);
}

/** Slack timestamps compare as numbers ("1712345678.000200"). */
function before(ts: string | undefined, ref: string): boolean {
  return ts !== undefined && Number(ts) < Number(ref);
}

/** A Web API call with rate limits waited out (a few times), and Slack's refusals said plainly. */
async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await withRetryLater(() => slackCall(fn), {
      attempts: RATE_LIMIT_TRIES,
      maxWaitMs: 30_000,
      deadlineMs: 60_000,
    });
  } catch (err) {
    throw unavailable(err);
  }
}

function unavailable(err: unknown): Error {
  if (err instanceof RetryLater)
    return new HistoryUnavailable("Slack is rate limiting history reads; try again in a minute");
  const code = slackErrorCode(err);
  const data = (err as { data?: { needed?: string } }).data;
  switch (code) {
    case "missing_scope":
      return new HistoryUnavailable(
        `the Slack app may not read this conversation's history (missing scope ${data?.needed ?? "channels:history, groups:history, im:history"}); an admin can add it and reinstall the app`,
      );
    case "not_in_channel":
    case "channel_not_found":
      return new HistoryUnavailable("the bot is not a member of this channel");
    case "thread_not_found":
      return new HistoryUnavailable("the thread no longer exists");
    case "invalid_cursor":
      return new HistoryUnavailable("Slack refused the page cursor; start again without one");
    case undefined:
      return err instanceof Error ? err : new Error(String(err));
    default:
      return new HistoryUnavailable(`Slack refused to read the history (${code})`);
  }
}
