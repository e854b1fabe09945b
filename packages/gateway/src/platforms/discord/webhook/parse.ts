import { z } from "zod";
import type { InboundFile } from "../../../domain/messages.ts";
import type { Origin } from "../../../domain/origin.ts";

/**
 * What Discord sends, validated with zod and read into what the adapter
 * handles: interactions posted to the endpoint (PING, slash commands,
 * button and select clicks), and messages from the Gateway.
 */

const Snowflake = z.string().regex(/^\d{1,20}$/);
const User = z.object({
  id: Snowflake,
  username: z.string().max(64),
  global_name: z.string().max(64).nullish(),
  bot: z.boolean().optional(),
});
export type DiscordUser = z.infer<typeof User>;

export const Interaction = z.object({
  id: Snowflake,
  application_id: Snowflake,
  type: z.number().int(),
  token: z.string().min(1).max(500),
  channel_id: Snowflake.optional(),
  guild_id: Snowflake.optional(),
  member: z.object({ user: User }).optional(),
  user: User.optional(),
  message: z
    .object({
      id: Snowflake,
      content: z.string().max(4000).default(""),
      components: z.array(z.unknown()).max(5).default([]),
    })
    .optional(),
  data: z
    .object({
      name: z.string().max(64).optional(),
      custom_id: z.string().max(100).optional(),
      component_type: z.number().int().optional(),
      values: z.array(z.string().max(100)).max(25).optional(),
    })
    .optional(),
});
export type Interaction = z.infer<typeof Interaction>;

export const InteractionType = { Ping: 1, Command: 2, Component: 3 } as const;

/** Who acted: the member's user in a server, the user in a DM. */
export function actorOf(i: Interaction): DiscordUser | undefined {
  return i.member?.user ?? i.user;
}

const Attachment = z.object({
  id: z.string().max(32).optional(),
  /** Where the CDN serves it (signed, expiring); files.ts fetches it from Discord's hosts only. */
  url: z.string().max(4000).optional(),
  filename: z.string().max(1024),
  content_type: z.string().max(255).optional(),
  size: z.number().int().nonnegative().optional(),
});

export const GatewayMessage = z.object({
  id: Snowflake,
  channel_id: Snowflake,
  guild_id: Snowflake.optional(),
  author: User,
  content: z.string().max(8000),
  mentions: z.array(User).max(100).default([]),
  attachments: z.array(Attachment).max(10).default([]),
  referenced_message: z.object({ author: User }).nullish(),
  webhook_id: Snowflake.optional(),
});
export type GatewayMessage = z.infer<typeof GatewayMessage>;

export type Classified = { kind: "ignore"; reason: string } | { kind: "message"; text: string };

/**
 * Whether a message is for the bot: every DM; in a server channel or
 * thread, a message that mentions the bot or replies to one of its messages.
 */
export function classifyMessage(msg: GatewayMessage, botId: string): Classified {
  if (msg.author.bot || msg.webhook_id) return { kind: "ignore", reason: "a bot's message" };
  const isDm = msg.guild_id === undefined;
  const mentioned = msg.mentions.some((u) => u.id === botId);
  const repliesToBot = msg.referenced_message?.author.id === botId;
  if (!isDm && !mentioned && !repliesToBot)
    return { kind: "ignore", reason: "not addressed to the bot" };
  const text = msg.content
    .replace(new RegExp(`<@!?${botId}>`, "g"), "")
    .replace(/[ \t]+/g, " ")
    .trim();
  return { kind: "message", text };
}

export function filesOf(msg: GatewayMessage): InboundFile[] {
  return msg.attachments.map((a) => ({
    name: a.filename,
    ...(a.content_type ? { mimeType: a.content_type } : {}),
    ...(a.size !== undefined ? { size: a.size } : {}),
    ...(a.url ? { ref: a.url } : {}),
  }));
}

export function displayName(user: DiscordUser): string {
  return user.global_name ?? user.username;
}

/**
 * Where a message came from: a DM, or a server channel or thread (its own
 * channel id). A Discord user id is the same person in every server, so
 * people are not scoped by server (`discord::<user id>`).
 */
export function originOf(msg: GatewayMessage, botId = ""): Origin {
  return {
    platform: "discord",
    // A named bot ([platforms.discord.bots.<id>]): its people and conversations are its own.
    ...(botId ? { workspace: botId } : {}),
    channelId: msg.channel_id,
    userId: msg.author.id,
    userName: displayName(msg.author),
    isDirect: msg.guild_id === undefined,
    messageRef: msg.id,
  };
}
