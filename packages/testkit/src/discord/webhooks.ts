/**
 * The interaction webhook routes (/api/v10/webhooks/{application id}/{token}):
 * how an app edits its answer to an interaction (`PATCH …/messages/@original`),
 * reads or deletes it, and sends follow-ups (`POST …`), authenticated by the
 * interaction's token alone, which works for 15 minutes. Errors as Discord
 * answers them: 404 Unknown Webhook (10015), 401 Invalid Webhook Token
 * (50027), 404 Unknown Message (10008), 400 Invalid Form Body (50035).
 */
import { checkMessageBody } from "./limits.ts";
import type { DiscordComponent, DiscordMessage, DiscordUser } from "./types.ts";
import { EPHEMERAL, snowflake } from "./wire.ts";

/** How long an interaction's token works for webhook calls. */
export const INTERACTION_TOKEN_MS = 15 * 60_000;

/** An interaction Discord sent, as its webhook (application id + token) knows it. */
export interface InteractionHook {
  applicationId: string;
  token: string;
  /** Who acted, where: an ephemeral follow-up is theirs alone. */
  user: DiscordUser;
  channelId: string;
  guildId?: string;
  /** The application's bot: the author of what the webhook posts. */
  bot: DiscordUser;
  /** When Discord sent it. */
  at: number;
  /**
   * Settles once the app's HTTP answer is applied: Discord handles a
   * webhook call after the answer it follows, so one arriving early waits.
   */
  answered: Promise<void>;
  /** The message the answer made (type 4, or type 5's "thinking…" placeholder). */
  originalId?: string;
}

export interface WebhookWorld {
  hook(token: string): InteractionHook | undefined;
  message(id: string): DiscordMessage | undefined;
  add(message: DiscordMessage): void;
  edit(target: DiscordMessage, data: Record<string, unknown>): void;
  wire(message: DiscordMessage): Record<string, unknown>;
  now(): number;
}

type Answer = [number, unknown];

const UNKNOWN_WEBHOOK: Answer = [404, { message: "Unknown Webhook", code: 10015 }];
const UNKNOWN_MESSAGE: Answer = [404, { message: "Unknown Message", code: 10008 }];

/** Answers a webhook route, or undefined when `method path` is not one. */
export async function webhookRoute(
  w: WebhookWorld,
  method: string,
  path: string,
  body: Record<string, unknown>,
): Promise<Answer | undefined> {
  const one = /^\/webhooks\/(\d+)\/([^/]+)\/messages\/(@original|\d+)$/.exec(path);
  const create = /^\/webhooks\/(\d+)\/([^/]+)$/.exec(path);
  const m = one ?? create;
  if (!m) return undefined;
  const hook = w.hook(decodeURIComponent(m[2] ?? ""));
  if (!hook || hook.applicationId !== m[1]) return UNKNOWN_WEBHOOK;
  if (w.now() - hook.at > INTERACTION_TOKEN_MS)
    return [401, { message: "Invalid Webhook Token", code: 50027 }];
  await hook.answered;
  if (create) return method === "POST" ? followUp(w, hook, body) : UNKNOWN_WEBHOOK;
  const target = messageOf(w, hook, one?.[3] ?? "");
  if (!target) return UNKNOWN_MESSAGE;
  if (method === "GET") return [200, w.wire(target)];
  if (method === "DELETE") {
    target.deleted = true;
    return [204, undefined];
  }
  if (method !== "PATCH") return [405, { message: "405: Method Not Allowed", code: 0 }];
  const invalid = checkMessageBody(body, false);
  if (invalid) return [400, invalid];
  // An edit cannot make a message ephemeral or public: flags other than these are ignored.
  w.edit(target, body);
  target.deferred = undefined;
  return [200, w.wire(target)];
}

/** `@original`, or a follow-up of this interaction, by id. */
function messageOf(w: WebhookWorld, hook: InteractionHook, id: string): DiscordMessage | undefined {
  const target = w.message(id === "@original" ? (hook.originalId ?? "") : id);
  if (!target || target.deleted || target.interactionToken !== hook.token) return undefined;
  return target;
}

/**
 * A follow-up message, ephemeral with flags 64. The first follow-up after a
 * deferred answer replaces its "thinking…" placeholder (keeping the
 * placeholder's visibility), as Discord does.
 */
function followUp(w: WebhookWorld, hook: InteractionHook, body: Record<string, unknown>): Answer {
  const invalid = checkMessageBody(body, true);
  if (invalid) return [400, invalid];
  const original = hook.originalId ? w.message(hook.originalId) : undefined;
  if (original?.deferred && !original.deleted) {
    w.edit(original, body);
    original.deferred = undefined;
    return [200, w.wire(original)];
  }
  const flags = typeof body.flags === "number" ? body.flags : 0;
  const message: DiscordMessage = {
    id: snowflake(),
    channel_id: hook.channelId,
    ...(hook.guildId ? { guild_id: hook.guildId } : {}),
    author: hook.bot,
    content: String(body.content ?? ""),
    components: (body.components as DiscordComponent[]) ?? [],
    edits: [],
    deleted: false,
    attachments: [],
    ...(flags & EPHEMERAL ? { ephemeralTo: hook.user.id } : {}),
    interactionToken: hook.token,
    timestamp: new Date(w.now()).toISOString(),
  };
  w.add(message);
  return [200, w.wire(message)];
}
