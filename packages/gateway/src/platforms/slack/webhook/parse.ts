import type { InboundFile } from "../../../domain/messages.ts";
import type { Block } from "../blocks.ts";

/**
 * What Slack sends, read into the few shapes the adapter handles: a POST to
 * /slack/events told apart by content type (event, interaction, slash
 * command), and the events themselves classified (is it for the agent?).
 */

/** The fields of a Slack `app_mention` / `message` event the adapter reads. */
export interface SlackMessageEvent {
  type: string;
  subtype?: string;
  user?: string;
  bot_id?: string;
  text?: string;
  ts?: string;
  thread_ts?: string;
  channel?: string;
  channel_type?: string;
  /** reaction_added: the emoji's name and the message it was added to. */
  reaction?: string;
  item?: { type?: string; channel?: string; ts?: string };
  /** assistant_thread_started: the assistant pane's thread (a DM) and where it was opened. */
  assistant_thread?: {
    user_id?: string;
    channel_id?: string;
    thread_ts?: string;
    context?: { channel_id?: string };
  };
  team?: string;
  /** The sender's own team (another one than the workspace's in a Slack Connect channel). */
  user_team?: string;
  files?: {
    name?: string;
    mimetype?: string;
    size?: number;
    url_private?: string;
    url_private_download?: string;
  }[];
}

/** What to do with an event: ignore it, or pass it on as one of the ways people address the bot. */
export type Classified =
  | { kind: "ignore"; reason: string }
  | {
      /** `ambient`: a channel message that does not address the bot (see Inbound, ambient mode). */
      kind: "mention" | "dm" | "followup" | "ambient";
      user: string;
      /** The sender's team as the event names it. */
      userTeam: string | undefined;
      channel: string;
      ts: string;
      /** Thread to reply in. */
      threadTs: string | undefined;
      text: string;
    };

/**
 * A person's stop reaction (shared/stop.ts) on a message in a conversation:
 * who reacted where. Reactions by the bot, on anything but a message, or with
 * other emoji are not stops.
 */
export function stopReaction(
  event: SlackMessageEvent,
  botUserId: string,
  stopNames: ReadonlySet<string>,
): { user: string; channel: string } | undefined {
  if (event.type !== "reaction_added" || !event.reaction) return undefined;
  // Skin tones do not change what the emoji means.
  if (!stopNames.has(event.reaction.replace(/::skin-tone-\d$/, ""))) return undefined;
  if (!event.user || event.user === botUserId) return undefined;
  if (event.item?.type !== "message" || !event.item.channel) return undefined;
  return { user: event.user, channel: event.item.channel };
}

/** Message subtypes that are still a person writing (everything else is an edit, a join, a bot...). */
const PERSON_SUBTYPES = new Set(["file_share", "thread_broadcast"]);

/**
 * Decide whether an event is for the agent. Mentions in channels start (or
 * continue) a thread; DMs always reach the agent; replies in a thread the
 * person started with a mention are follow-ups (the caller checks that); every
 * other channel message is ambient (the gateway takes it only where the
 * channel's ambient mode says so). The bot's own messages, edits and deletions
 * are ignored.
 */
export function classify(event: SlackMessageEvent, botUserId: string): Classified {
  if (event.type !== "app_mention" && event.type !== "message")
    return { kind: "ignore", reason: `event ${event.type}` };
  if (event.subtype && !PERSON_SUBTYPES.has(event.subtype))
    return { kind: "ignore", reason: `subtype ${event.subtype}` };
  if (event.bot_id) return { kind: "ignore", reason: "a bot's message" };
  if (!event.user || event.user === botUserId)
    return { kind: "ignore", reason: "the bot's own message" };
  if (!event.channel || !event.ts) return { kind: "ignore", reason: "no channel or ts" };
  const raw = event.text ?? "";
  const mentioned = raw.includes(`<@${botUserId}>`) || raw.includes(`<@${botUserId}|`);
  const base = {
    user: event.user,
    channel: event.channel,
    ts: event.ts,
    text: cleanText(raw, botUserId),
    userTeam: event.user_team ?? event.team,
  };
  if (event.type === "message" && event.channel_type === "im") {
    return { kind: "dm", ...base, threadTs: event.thread_ts };
  }
  if (event.type === "app_mention" || mentioned) {
    return { kind: "mention", ...base, threadTs: event.thread_ts ?? event.ts };
  }
  if (event.thread_ts && event.thread_ts !== event.ts) {
    return { kind: "followup", ...base, threadTs: event.thread_ts };
  }
  // Taken only where the channel's ambient mode says so; answered in a thread of its own.
  return { kind: "ambient", ...base, threadTs: event.ts };
}

/**
 * The text as the person meant it: the bot mention removed, Slack's markup
 * (<@U1>, <#C1|name>, <url|label>, &amp;) turned back into plain text.
 */
export function cleanText(text: string, botUserId: string): string {
  return text
    .replace(new RegExp(`<@${botUserId}(\\|[^>]*)?>`, "g"), "")
    .replace(/<@([UW][A-Z0-9]+)\|([^>]+)>/g, "@$2")
    .replace(/<@([UW][A-Z0-9]+)>/g, "@$1")
    .replace(/<#[A-Z0-9]+\|([^>]*)>/g, "#$1")
    .replace(/<!(here|channel|everyone)(\|[^>]*)?>/g, "@$1")
    .replace(/<!subteam\^[A-Z0-9]+\|([^>]+)>/g, "$1")
    .replace(/<((?:https?|mailto):[^|>]+)\|([^>]+)>/g, (_m, url: string, label: string) =>
      label === url ? url : `${label} (${url})`,
    )
    .replace(/<((?:https?|mailto):[^>]+)>/g, "$1")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&")
    .replace(/[ \t]+/g, " ")
    .trim();
}

export function filesOf(event: SlackMessageEvent): InboundFile[] {
  return (event.files ?? []).map((f) => ({
    name: f.name ?? "file",
    ...(f.mimetype ? { mimeType: f.mimetype } : {}),
    ...(f.size !== undefined ? { size: f.size } : {}),
    ...(f.url_private_download || f.url_private
      ? { ref: f.url_private_download ?? f.url_private }
      : {}),
  }));
}

/** What a signed POST to /slack/events carries, told apart by its content type and fields. */
export type SlackRequest =
  | { kind: "interaction"; payload: string }
  | { kind: "command"; fields: Record<string, string> }
  | { kind: "event"; raw: string }
  | { kind: "unknown" };

export function parseSlackRequest(contentType: string | undefined, raw: string): SlackRequest {
  if (!(contentType ?? "").includes("application/x-www-form-urlencoded"))
    return { kind: "event", raw };
  const form = new URLSearchParams(raw);
  const payload = form.get("payload");
  if (payload !== null) return { kind: "interaction", payload };
  if (form.get("command") !== null) return { kind: "command", fields: Object.fromEntries(form) };
  return { kind: "unknown" };
}

/** An Events API envelope (over HTTP, or a Socket Mode `events_api` payload). */
export interface EventEnvelope {
  type: string;
  team_id?: string;
  /** tokens_revoked names the revoked tokens' users: `bot` for bot tokens, `oauth` for user tokens. */
  event?: SlackMessageEvent & {
    tokens?: { bot?: string[]; oauth?: string[] };
    /** member_joined_channel: who added the member (absent when they joined themselves). */
    inviter?: string;
  };
  challenge?: string;
}

/** A `block_actions` interaction: a button on one of our messages was clicked. */
export interface BlockActionsPayload {
  type: string;
  user?: { id: string; username?: string; name?: string; team_id?: string };
  team?: { id: string } | null;
  channel?: { id: string };
  container?: { channel_id?: string; message_ts?: string; thread_ts?: string };
  message?: { ts?: string; text?: string; blocks?: Block[]; thread_ts?: string };
  actions?: { action_id: string; value?: string; text?: { text?: string } }[];
}

/** A slash command's form fields (`command`, `text`, `user_id`, `response_url`, ...). */
export type SlashCommand = Record<string, string>;

/**
 * What the adapter does with a verified delivery, whichever receiver (HTTP
 * or Socket Mode) got it. A command's reply is what Slack shows the person.
 */
export interface SlackHandlers {
  event(envelope: EventEnvelope): Promise<void>;
  interaction(payload: BlockActionsPayload): Promise<void>;
  command(fields: SlashCommand): Promise<Record<string, unknown> | undefined>;
}

/** JSON of a signed body, or undefined when it is not JSON (answered 400). */
export function parseJson<T>(raw: string): T | undefined {
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}
