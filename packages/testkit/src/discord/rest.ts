/**
 * The REST routes a bot calls under /api/v10 (what @discordjs/rest and
 * @discordjs/ws use): gateway/bot, users/@me, application commands, DM
 * channels, typing, reading a channel's messages, and creating, editing
 * and deleting messages, with
 * Discord's limits and error bodies.
 */
import { checkMessageBody } from "./limits.ts";
import type { DiscordChannel, DiscordComponent, DiscordMessage, DiscordUser } from "./types.ts";
import { snowflake } from "./wire.ts";

/** A route: its match, the (JSON or multipart) body and the query; answers [status, body]. */
export type Route = (
  m: RegExpMatchArray,
  body: Record<string, unknown>,
  query: URLSearchParams,
) => [number, unknown];

/** The emulator's model as the routes see it. */
export interface RestWorld {
  bot: DiscordUser;
  applicationId: string;
  gatewayUrl(): string;
  channels: Map<string, DiscordChannel>;
  setCommands(list: { name: string; description?: string }[]): void;
  dmChannel(user: DiscordUser): string;
  message(id: string): DiscordMessage | undefined;
  /** Every message, in the order they were made (ids ascending). */
  all(): readonly DiscordMessage[];
  add(message: DiscordMessage): void;
  edit(target: DiscordMessage, data: Record<string, unknown>): void;
  wire(message: DiscordMessage): Record<string, unknown>;
}

export function restRoutes(w: RestWorld): [RegExp, Route][] {
  return [
    [
      /^GET \/gateway\/bot$/,
      () => [
        200,
        {
          url: w.gatewayUrl(),
          shards: 1,
          session_start_limit: {
            total: 1000,
            remaining: 999,
            reset_after: 0,
            max_concurrency: 1,
          },
        },
      ],
    ],
    [/^GET \/users\/@me$/, () => [200, w.bot]],
    [
      /^PUT \/applications\/(\d+)\/commands$/,
      (m, body) => {
        if (m[1] !== w.applicationId) return [403, { message: "Missing Access", code: 50001 }];
        const list = (Array.isArray(body) ? body : []) as {
          name: string;
          description?: string;
        }[];
        w.setCommands(list.map((c) => ({ ...c })));
        return [200, list.map((c) => ({ ...c, id: snowflake(), application_id: w.applicationId }))];
      },
    ],
    [
      /^POST \/users\/@me\/channels$/,
      (_m, body) => {
        const recipient = String(body.recipient_id ?? "");
        const id = w.dmChannel({ id: recipient, username: "someone" });
        return [200, { id, type: 1, recipients: [{ id: recipient }] }];
      },
    ],
    [
      /^POST \/channels\/(\d+)\/typing$/,
      (m) =>
        w.channels.has(m[1] ?? "")
          ? [204, undefined]
          : [404, { message: "Unknown Channel", code: 10003 }],
    ],
    [/^GET \/channels\/(\d+)\/messages$/, (m, _body, query) => listMessages(w, m[1] ?? "", query)],
    [/^POST \/channels\/(\d+)\/messages$/, (m, body) => createMessage(w, m[1] ?? "", body)],
    [
      /^PATCH \/channels\/(\d+)\/messages\/(\d+)$/,
      (m, body) => patchMessage(w, m[1] ?? "", m[2] ?? "", body),
    ],
    [
      /^DELETE \/channels\/(\d+)\/messages\/(\d+)$/,
      (m) => {
        const target = w.message(m[2] ?? "");
        if (!target || target.channel_id !== m[1])
          return [404, { message: "Unknown Message", code: 10008 }];
        target.deleted = true;
        return [204, undefined];
      },
    ],
  ];
}

/**
 * `GET /channels/{id}/messages`: newest first, at most `limit` (1–100,
 * default 50), before or after a message id. A DM is readable only by its
 * bot; a server channel whose history the bot may not read (no Read Message
 * History permission, `readHistory: false`) answers 403 50013 as Discord does.
 */
function listMessages(w: RestWorld, channelId: string, query: URLSearchParams): [number, unknown] {
  const channel = w.channels.get(channelId);
  if (!channel) return [404, { message: "Unknown Channel", code: 10003 }];
  if (channel.type === 1 && (channel.botId ?? w.bot.id) !== w.bot.id)
    return [403, { message: "Missing Access", code: 50001 }];
  if (channel.readHistory === false) return [403, { message: "Missing Permissions", code: 50013 }];
  const limit = Number(query.get("limit") ?? 50);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    return [400, { message: "Invalid Form Body", code: 50035 }];
  const before = query.get("before");
  const after = query.get("after");
  let list = w
    .all()
    .filter((m) => m.channel_id === channelId && !m.deleted && !m.ephemeralTo)
    .filter((m) => (before ? BigInt(m.id) < BigInt(before) : true))
    .filter((m) => (after ? BigInt(m.id) > BigInt(after) : true));
  // `after` reads the oldest ones after it; otherwise the newest.
  list = after && !before ? list.slice(0, limit) : list.slice(-limit);
  return [200, list.reverse().map((m) => w.wire(m))];
}

function createMessage(
  w: RestWorld,
  channelId: string,
  body: Record<string, unknown>,
): [number, unknown] {
  const channel = w.channels.get(channelId);
  if (!channel) return [404, { message: "Unknown Channel", code: 10003 }];
  const invalid = checkMessageBody(body, true);
  if (invalid) return [400, invalid];
  const ref = body.message_reference as { message_id?: string } | undefined;
  const message: DiscordMessage = {
    id: snowflake(),
    channel_id: channelId,
    ...(channel.guild_id ? { guild_id: channel.guild_id } : {}),
    author: w.bot,
    content: String(body.content ?? ""),
    components: (body.components as DiscordComponent[]) ?? [],
    edits: [],
    deleted: false,
    attachments: (body.__files as DiscordMessage["attachments"]) ?? [],
    ...(ref?.message_id ? { replyTo: ref.message_id } : {}),
    timestamp: new Date().toISOString(),
  };
  w.add(message);
  return [200, w.wire(message)];
}

function patchMessage(
  w: RestWorld,
  channelId: string,
  messageId: string,
  body: Record<string, unknown>,
): [number, unknown] {
  const target = w.message(messageId);
  if (!target || target.channel_id !== channelId || target.deleted)
    return [404, { message: "Unknown Message", code: 10008 }];
  if (target.author.id !== w.bot.id)
    return [403, { message: "Cannot edit a message authored by another user", code: 50005 }];
  const invalid = checkMessageBody(body, false);
  if (invalid) return [400, invalid];
  w.edit(target, body);
  return [200, w.wire(target)];
}
