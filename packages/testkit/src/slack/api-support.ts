/**
 * What Slack Web API method handlers share: argument access, Slack errors,
 * the emulator surface they act on, rate-limit tiers and the checks that
 * several methods apply the same way (channels, message content, threads).
 */
import { checkBlocks, normalizeBlocks } from "./blocks.ts";
import type {
  SlackChannel,
  SlackInstallation,
  SlackMessage,
  SlackOAuthCodeInput,
  SlackRateLimitRule,
  SlackView,
} from "./types.ts";
import type { WireContext } from "./wire.ts";

export class SlackApiError extends Error {
  readonly code: string;
  readonly extra: Record<string, unknown>;

  constructor(code: string, extra: Record<string, unknown> = {}) {
    super(code);
    this.code = code;
    this.extra = extra;
  }
}

/** Typed access to method arguments, whichever encoding they arrived in. */
export class Args {
  readonly raw: Record<string, unknown>;

  constructor(raw: Record<string, unknown>) {
    this.raw = raw;
  }

  has(name: string): boolean {
    return this.raw[name] !== undefined && this.raw[name] !== null;
  }

  str(name: string): string | undefined {
    const v = this.raw[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "string") return v;
    if (typeof v === "number" || typeof v === "boolean") return String(v);
    return JSON.stringify(v);
  }

  bool(name: string): boolean | undefined {
    const v = this.raw[name];
    if (v === undefined || v === null || v === "") return undefined;
    if (typeof v === "boolean") return v;
    return v === "true" || v === "1" || v === 1;
  }

  int(name: string): number | undefined {
    const v = this.raw[name];
    if (v === undefined || v === null || v === "") return undefined;
    const n = typeof v === "number" ? v : Number.parseInt(String(v), 10);
    return Number.isFinite(n) ? n : undefined;
  }

  /** A JSON-valued argument: form bodies carry it as a string. */
  json(name: string): unknown {
    const v = this.raw[name];
    if (typeof v !== "string") return v;
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  }
}

export interface OAuthGrant extends Required<Omit<SlackOAuthCodeInput, "redirectUri">> {
  redirectUri?: string;
  used: boolean;
}

export interface ResponseUrlTarget {
  teamId: string;
  channel: string;
  messageTs?: string;
  threadTs?: string;
  userId: string;
  uses: number;
}

/** What method handlers need from the emulator. */
export interface SlackBackend extends WireContext {
  readonly defaultTeamId: string;
  readonly views: SlackView[];
  readonly triggers: Map<string, { expiresAt: number; teamId: string; userId: string }>;
  readonly oauthCodes: Map<string, OAuthGrant>;
  readonly clientId?: string;
  readonly clientSecret?: string;
  install(grant: OAuthGrant): SlackInstallation;
  /** Socket Mode: a fresh wss URL for apps.connections.open. */
  openSocketUrl(): string;
  /**
   * Slack sends apps subscribed to message.* events for their own messages,
   * edits and deletes too; `previous` is the wire message before the change.
   */
  echo(
    kind: "new" | "changed" | "deleted",
    message: SlackMessage,
    previous?: Record<string, unknown>,
  ): void;
}

export interface ApiCall {
  method: string;
  args: Args;
  install?: SlackInstallation;
  /** Authorization header value, for oauth.v2.access's HTTP Basic client auth. */
  authorization?: string;
}

type Handler = (call: ApiCall, emu: SlackBackend) => Record<string, unknown>;

export type AuthKind = "bot" | "none" | "app";

export interface MethodSpec {
  auth: AuthKind;
  rate: SlackRateLimitRule;
  /** The OAuth scope the token must have (else `missing_scope`, as Slack answers). */
  scope?: string;
  handler: Handler;
}

export const MINUTE = 60_000;
export const TIER_2: SlackRateLimitRule = { limit: 20, windowMs: MINUTE };
export const TIER_3: SlackRateLimitRule = { limit: 50, windowMs: MINUTE };
export const TIER_4: SlackRateLimitRule = { limit: 100, windowMs: MINUTE };
/** chat.postMessage: about one per second per channel, with short bursts allowed. */
export const POST_MESSAGE: SlackRateLimitRule = { limit: 10, windowMs: 10_000, per: "channel" };

export const MAX_TEXT = 40_000;

export function installOf(call: ApiCall): SlackInstallation {
  if (!call.install) throw new SlackApiError("not_authed");
  return call.install;
}

/** Channel for reads and edits: must exist in the caller's workspace. */
export function channelFor(
  emu: SlackBackend,
  call: ApiCall,
  ref: string | undefined,
): SlackChannel {
  const install = installOf(call);
  const channel = ref ? emu.world.findChannel(ref) : undefined;
  if (!channel || channel.teamId !== install.teamId) throw new SlackApiError("channel_not_found");
  return channel;
}

/** Channel to post into: also accepts a user id (the app's DM with them). */
export function postTarget(
  emu: SlackBackend,
  call: ApiCall,
  ref: string | undefined,
): SlackChannel {
  const install = installOf(call);
  if (!ref) throw new SlackApiError("channel_not_found");
  if (/^[UW]/.test(ref)) {
    const user = emu.world.users.get(ref);
    if (!user || user.teamId !== install.teamId) throw new SlackApiError("channel_not_found");
    return emu.world.imFor(ref, install.teamId);
  }
  const channel = channelFor(emu, call, ref);
  if (channel.isArchived) throw new SlackApiError("is_archived");
  if (!channel.isMember) throw new SlackApiError("not_in_channel");
  return channel;
}

export function readable(emu: SlackBackend, call: ApiCall, ref: string | undefined): SlackChannel {
  const channel = channelFor(emu, call, ref);
  if (!channel.isMember) throw new SlackApiError("not_in_channel");
  return channel;
}

/** The scope reading a channel's history needs, by its type (Slack's `*:history`). */
const HISTORY_SCOPE: Record<SlackChannel["type"], string> = {
  public: "channels:history",
  private: "groups:history",
  im: "im:history",
  mpim: "mpim:history",
};

/**
 * A channel whose history the caller may read: readable, and the token has the
 * channel type's `*:history` scope (else `missing_scope` with `needed` and
 * `provided`, as Slack answers).
 */
export function historyReadable(
  emu: SlackBackend,
  call: ApiCall,
  ref: string | undefined,
): SlackChannel {
  const install = installOf(call);
  const channel = readable(emu, call, ref);
  const needed = HISTORY_SCOPE[channel.type];
  if (!install.scopes.includes(needed)) {
    throw new SlackApiError("missing_scope", { needed, provided: install.scopes.join(",") });
  }
  return channel;
}

export interface Content {
  text?: string;
  blocks?: Record<string, unknown>[];
  attachments?: unknown[];
}

/** text/blocks/attachments with Slack's validation; `undefined` fields were not sent. */
export function readContent(args: Args, textField = "text"): Content {
  const out: Content = {};
  const text = args.str(textField);
  if (text !== undefined) {
    if (text.length > MAX_TEXT) throw new SlackApiError("msg_too_long");
    out.text = text;
  }
  if (args.has("blocks")) {
    const check = checkBlocks(args.raw.blocks);
    if (!check.ok) {
      throw new SlackApiError(check.error, {
        ...(check.errors.length ? { errors: check.errors } : {}),
        response_metadata: {
          messages: check.errors.length
            ? check.errors.map((e) => `[ERROR] ${e}`)
            : ["[ERROR] the blocks array is not a valid JSON array"],
        },
      });
    }
    out.blocks = normalizeBlocks(check.blocks);
  }
  if (args.has("attachments")) {
    const attachments = args.json("attachments");
    if (!Array.isArray(attachments)) throw new SlackApiError("invalid_attachments");
    if (attachments.length > 100) throw new SlackApiError("too_many_attachments");
    out.attachments = attachments;
  }
  return out;
}

export function isEmpty(content: Content): boolean {
  return !content.text && !content.blocks?.length && !content.attachments?.length;
}

export function readMetadata(args: Args): unknown {
  if (!args.has("metadata")) return undefined;
  const metadata = args.json("metadata");
  if (
    typeof metadata !== "object" ||
    metadata === null ||
    typeof (metadata as Record<string, unknown>).event_type !== "string"
  ) {
    throw new SlackApiError("invalid_metadata_format");
  }
  return metadata;
}

/** thread_ts handling: a reply's ts threads under its parent; an unknown ts posts top-level. */
export function resolveThread(emu: SlackBackend, channel: string, threadTs: string | undefined) {
  if (!threadTs) return undefined;
  const target = emu.world.findMessage(channel, threadTs);
  if (!target || target.deleted) return undefined;
  const parentTs = target.threadTs && target.threadTs !== target.ts ? target.threadTs : target.ts;
  const parent = emu.world.findMessage(channel, parentTs);
  if (parent) parent.threadTs = parent.ts;
  return parentTs;
}

export function newBotMessage(
  emu: SlackBackend,
  install: SlackInstallation,
  channel: Pick<SlackChannel, "id">,
  fields: Partial<SlackMessage> & { postedVia: string },
): SlackMessage {
  return emu.world.addMessage({
    channel: channel.id,
    ts: emu.world.clock.next(),
    teamId: install.teamId,
    user: install.botUserId,
    botId: install.botId,
    appId: emu.appId,
    fromBot: true,
    text: "",
    mrkdwn: true,
    replyBroadcast: false,
    files: [],
    reactions: [],
    edits: [],
    deleted: false,
    at: Date.now(),
    ...fields,
  });
}

/** A message that exists and was not deleted, else message_not_found. */
export function existingMessage(
  emu: SlackBackend,
  channel: SlackChannel,
  ts: string | undefined,
): SlackMessage {
  const message = ts ? emu.world.findMessage(channel.id, ts) : undefined;
  if (!message || message.deleted) throw new SlackApiError("message_not_found");
  return message;
}

/** A message the caller's bot may change; others fail like Slack. */
export function ownMessage(
  emu: SlackBackend,
  call: ApiCall,
  channel: SlackChannel,
  ts: string | undefined,
  denied: string,
): SlackMessage {
  const install = installOf(call);
  const message = existingMessage(emu, channel, ts);
  if (message.botId !== install.botId) throw new SlackApiError(denied);
  return message;
}

export function snapshot(m: SlackMessage): void {
  m.edits.push({
    text: m.text,
    ...(m.blocks ? { blocks: m.blocks } : {}),
    ...(m.attachments ? { attachments: m.attachments } : {}),
    replacedAt: Date.now(),
  });
}

/**
 * One page of `items` by `limit` and `cursor`. Cursors are opaque base64 like
 * Slack's; with `bind` (the channel and thread a listing is of) a cursor is
 * valid only for that listing, and another's is refused with invalid_cursor.
 */
export function page<T>(items: T[], args: Args, defaultLimit: number, bind = "") {
  const limit = Math.min(Math.max(args.int("limit") ?? defaultLimit, 1), 1000);
  const cursor = args.str("cursor");
  let offset = 0;
  if (cursor) {
    const decoded = Buffer.from(cursor, "base64").toString("utf8");
    const match = /^offset:(\d+)(?::(.*))?$/.exec(decoded);
    if (!match || (match[2] ?? "") !== bind) throw new SlackApiError("invalid_cursor");
    offset = Number(match[1]);
  }
  const slice = items.slice(offset, offset + limit);
  const next = offset + limit < items.length;
  const tail = bind ? `:${bind}` : "";
  return {
    slice,
    hasMore: next,
    nextCursor: next ? Buffer.from(`offset:${offset + limit}${tail}`).toString("base64") : "",
  };
}

export function inRange(ts: string, args: Args): boolean {
  const inclusive = args.bool("inclusive") ?? false;
  const latest = args.str("latest");
  const oldest = args.str("oldest");
  const t = Number(ts);
  if (latest && (inclusive ? t > Number(latest) : t >= Number(latest))) return false;
  if (oldest && (inclusive ? t < Number(oldest) : t <= Number(oldest))) return false;
  return true;
}
