/** Payloads Slack sends to apps: Events API envelopes, interactivity and slash commands. */
import { randomBytes } from "node:crypto";
import type { TeamInfo } from "./state.ts";
import type { SlackChannel, SlackMessage, SlackUser } from "./types.ts";

export function randomId(length: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

export function clientMsgId(): string {
  const hex = randomBytes(16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The rich_text block Slack attaches to user-typed messages, with <@U…> as user elements. */
export function richTextBlocks(text: string): Record<string, unknown>[] {
  const elements: Record<string, unknown>[] = [];
  const re = /<@([UW][A-Z0-9]+)(?:\|[^>]*)?>/g;
  let last = 0;
  for (const match of text.matchAll(re)) {
    if (match.index > last) elements.push({ type: "text", text: text.slice(last, match.index) });
    elements.push({ type: "user", user_id: match[1] });
    last = match.index + match[0].length;
  }
  if (last < text.length) elements.push({ type: "text", text: text.slice(last) });
  return [
    {
      type: "rich_text",
      block_id: randomId(5),
      elements: [{ type: "rich_text_section", elements }],
    },
  ];
}

export function channelTypeOf(channel: SlackChannel): "im" | "channel" | "group" | "mpim" {
  if (channel.type === "im") return "im";
  if (channel.type === "mpim") return "mpim";
  return channel.type === "private" ? "group" : "channel";
}

export interface EnvelopeContext {
  team: TeamInfo;
  appId: string;
  botUserId: string;
  verificationToken: string;
}

export function eventEnvelope(
  ctx: EnvelopeContext,
  event: Record<string, unknown>,
  eventId: string,
  eventTime: number,
): Record<string, unknown> {
  return {
    token: ctx.verificationToken,
    team_id: ctx.team.id,
    context_team_id: ctx.team.id,
    context_enterprise_id: null,
    api_app_id: ctx.appId,
    event,
    type: "event_callback",
    event_id: eventId,
    event_time: eventTime,
    authorizations: [
      {
        enterprise_id: null,
        team_id: ctx.team.id,
        user_id: ctx.botUserId,
        is_bot: true,
        is_enterprise_install: false,
      },
    ],
    is_ext_shared_channel: false,
    event_context: `4-${Buffer.from(JSON.stringify({ t: ctx.team.id, a: ctx.appId })).toString("base64url")}`,
  };
}

/** The user-message event (app_mention or message) for a stored user message. */
export function userMessageEvent(
  type: "app_mention" | "message",
  message: SlackMessage,
  channel: SlackChannel,
  files: Record<string, unknown>[],
  extra: { clientMsgId: string; blocks: unknown[] },
): Record<string, unknown> {
  const event: Record<string, unknown> = { type };
  if (files.length > 0) {
    if (type === "message") event.subtype = "file_share";
    event.files = files;
    event.upload = false;
    event.display_as_bot = false;
  }
  Object.assign(event, {
    text: message.text,
    user: message.user,
    ts: message.ts,
    blocks: extra.blocks,
    team: message.teamId,
    client_msg_id: extra.clientMsgId,
    channel: channel.id,
    event_ts: message.ts,
  });
  if (message.threadTs && message.threadTs !== message.ts) event.thread_ts = message.threadTs;
  if (type === "message") event.channel_type = channelTypeOf(channel);
  // Slack Connect: events name the sender's own organization.
  if (channel.sharedWith?.length) {
    event.user_team = message.teamId;
    event.source_team = message.teamId;
  }
  return event;
}

export function blockActionsPayload(input: {
  ctx: EnvelopeContext;
  user: SlackUser;
  channel: SlackChannel;
  message: Record<string, unknown>;
  messageTs: string;
  threadTs?: string;
  action: Record<string, unknown>;
  triggerId: string;
  responseUrl: string;
}): Record<string, unknown> {
  const { ctx, user, channel } = input;
  return {
    type: "block_actions",
    user: { id: user.id, username: user.name, name: user.name, team_id: user.teamId },
    api_app_id: ctx.appId,
    token: ctx.verificationToken,
    container: {
      type: "message",
      message_ts: input.messageTs,
      channel_id: channel.id,
      is_ephemeral: false,
      ...(input.threadTs ? { thread_ts: input.threadTs } : {}),
    },
    trigger_id: input.triggerId,
    team: { id: ctx.team.id, domain: ctx.team.domain },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: channel.id, name: channel.type === "im" ? "directmessage" : channel.name },
    message: input.message,
    state: { values: {} },
    response_url: input.responseUrl,
    actions: [input.action],
  };
}

export function slashCommandFields(input: {
  ctx: EnvelopeContext;
  user: SlackUser;
  channel: SlackChannel;
  command: string;
  text: string;
  triggerId: string;
  responseUrl: string;
}): Record<string, string> {
  const { ctx, user, channel } = input;
  return {
    token: ctx.verificationToken,
    team_id: ctx.team.id,
    team_domain: ctx.team.domain,
    channel_id: channel.id,
    channel_name: channel.type === "im" ? "directmessage" : channel.name,
    user_id: user.id,
    user_name: user.name,
    command: input.command,
    text: input.text,
    api_app_id: ctx.appId,
    is_enterprise_install: "false",
    response_url: input.responseUrl,
    trigger_id: input.triggerId,
  };
}

export function triggerId(): string {
  const digits = (n: number) => Array.from(randomBytes(n), (b) => String(b % 10)).join("");
  return `${digits(10)}.${digits(12)}.${randomBytes(16).toString("hex")}`;
}
