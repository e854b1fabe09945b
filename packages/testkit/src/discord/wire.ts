/** Discord's wire shapes of the emulator's model: snowflakes, messages, GUILD_CREATE. */
import type { DiscordChannel, DiscordMessage, DiscordUser } from "./types.ts";

const EPOCH = 1_420_070_400_000n;
let counter = 0n;
/** A snowflake: milliseconds since Discord's epoch, shifted, plus a counter. */
export function snowflake(): string {
  counter = (counter + 1n) % 4096n;
  return String(((BigInt(Date.now()) - EPOCH) << 22n) + counter);
}

/** Message flag: only the interaction's user sees it. */
export const EPHEMERAL = 64;

/** The id of a message's n-th attachment (unique: derived from the message's snowflake). */
export function attachmentId(m: DiscordMessage, n: number): string {
  return String(BigInt(m.id) * 16n + BigInt(n));
}

/**
 * Where an attachment is served, as Discord's CDN names it: a path by
 * channel and attachment id, and the signed expiry parameters (`ex`, `is`, `hm`).
 */
export function attachmentUrl(cdn: string, m: DiscordMessage, n: number): string {
  const a = m.attachments[n];
  if (a?.url) return a.url;
  const ex = Math.floor(Date.now() / 1000 + 86_400).toString(16);
  return `${cdn}/attachments/${m.channel_id}/${attachmentId(m, n)}/${encodeURIComponent(a?.filename ?? "file")}?ex=${ex}&is=${ex}&hm=${"0".repeat(64)}&`;
}

/** A message as the Gateway and REST send it. */
export function wireMessage(
  m: DiscordMessage,
  bot: DiscordUser,
  find: (id: string) => DiscordMessage | undefined,
  cdn: string,
): Record<string, unknown> {
  const mentions = [...m.content.matchAll(/<@!?(\d+)>/g)].map((x) =>
    x[1] === bot.id ? bot : { id: x[1], username: "someone" },
  );
  const replied = m.replyTo ? find(m.replyTo) : undefined;
  return {
    id: m.id,
    channel_id: m.channel_id,
    ...(m.guild_id ? { guild_id: m.guild_id } : {}),
    author: m.author,
    content: m.content,
    components: m.components,
    mentions,
    mention_roles: [],
    mention_everyone: false,
    attachments: m.attachments.map((a, i) => ({
      id: attachmentId(m, i),
      filename: a.filename,
      content_type: a.contentType,
      size: a.data.length,
      url: attachmentUrl(cdn, m, i),
      proxy_url: attachmentUrl(cdn, m, i),
    })),
    embeds: [],
    pinned: false,
    tts: false,
    type: m.replyTo ? 19 : 0,
    timestamp: m.timestamp,
    edited_timestamp: m.edits.length ? new Date().toISOString() : null,
    // LOADING (128): a deferred answer still "thinking…".
    flags: (m.ephemeralTo ? EPHEMERAL : 0) | (m.deferred ? 128 : 0),
    ...(m.replyTo
      ? {
          message_reference: { message_id: m.replyTo, channel_id: m.channel_id },
          ...(replied
            ? {
                referenced_message: {
                  id: replied.id,
                  author: replied.author,
                  content: replied.content,
                },
              }
            : {}),
        }
      : {}),
  };
}

/** GUILD_CREATE for a guild and its channels (text channels and threads). */
export function guildCreate(
  id: string,
  name: string,
  channels: DiscordChannel[],
): Record<string, unknown> {
  return {
    id,
    name,
    unavailable: false,
    channels: channels.filter((c) => c.type === 0),
    threads: channels.filter((c) => c.type === 11),
    members: [],
    roles: [],
    emojis: [],
    features: [],
    member_count: 2,
    joined_at: new Date().toISOString(),
  };
}
