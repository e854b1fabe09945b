/**
 * Bot API methods. Handlers read parameters the way the Bot API does (JSON,
 * form or multipart; numbers and JSON objects may arrive as strings), act on the
 * bot's model and return `result`, or throw TgError.
 */
import type { UploadedFile } from "../platform-kit/body.ts";
import { mimeFor } from "../platform-kit/mime.ts";
import { type ChatState, now, type TelegramBotSim } from "./bot.ts";
import { TgError } from "./errors.ts";
import {
  EntityParseError,
  type FormattedText,
  parseFormatted,
  type TgEntity,
  trimFormatted,
  withDetectedEntities,
} from "./format.ts";
import { checkReplyMarkup, checkWebAppButtonUrl, type InlineKeyboardMarkup } from "./keyboard.ts";
import type { TelegramMessage, TgFile, TgUser, TgWebhookConfig } from "./types.ts";

export class TgParams {
  readonly raw: Record<string, unknown>;
  readonly files: UploadedFile[];

  constructor(raw: Record<string, unknown>, files: UploadedFile[]) {
    this.raw = raw;
    this.files = files;
  }

  has(name: string): boolean {
    return this.raw[name] !== undefined && this.raw[name] !== null && this.raw[name] !== "";
  }

  str(name: string): string | undefined {
    const v = this.raw[name];
    if (v === undefined || v === null) return undefined;
    return typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
  }

  int(name: string): number | undefined {
    const v = this.raw[name];
    if (v === undefined || v === null || v === "") return undefined;
    const n = typeof v === "number" ? v : Number(v);
    return Number.isInteger(n) ? n : Number.NaN;
  }

  bool(name: string): boolean {
    const v = this.raw[name];
    return v === true || v === "true" || v === "1" || v === 1;
  }

  json(name: string): unknown {
    const v = this.raw[name];
    if (typeof v !== "string") return v;
    try {
      return JSON.parse(v);
    } catch {
      throw TgError.badRequest(`can't parse ${name} JSON object`);
    }
  }

  /** An InputFile: an uploaded part (by field or attach://), or a file_id / URL string. */
  inputFile(name: string): { upload: UploadedFile } | { ref: string } | undefined {
    const direct = this.files.find((f) => f.field === name);
    if (direct) return { upload: direct };
    const value = this.str(name);
    if (!value) return undefined;
    if (value.startsWith("attach://")) {
      const part = this.files.find((f) => f.field === value.slice("attach://".length));
      if (!part) throw TgError.badRequest(`wrong HTTP URL specified`);
      return { upload: part };
    }
    return { ref: value };
  }
}

/** Marks a result that carries a `description`, like setWebhook's "Webhook was set". */
export class Described {
  readonly result: unknown;
  readonly description: string;

  constructor(result: unknown, description: string) {
    this.result = result;
    this.description = description;
  }
}

export interface TgCallContext {
  params: TgParams;
  /** Aborted when the client disconnects (long polls end early). */
  signal: AbortSignal;
  httpsOnly: boolean;
}

type Handler = (bot: TelegramBotSim, call: TgCallContext) => unknown;

// ---------------------------------------------------------------- shared checks

export function chatOf(bot: TelegramBotSim, params: TgParams): ChatState {
  const raw = params.str("chat_id");
  if (raw === undefined || raw === "") throw TgError.badRequest("chat_id is empty");
  let state: ChatState | undefined;
  if (raw.startsWith("@")) {
    const name = raw.slice(1).toLowerCase();
    state = [...bot.chats.values()].find((c) => c.chat.username?.toLowerCase() === name);
  } else if (/^-?\d+$/.test(raw)) {
    state = bot.chats.get(Number(raw));
  }
  if (!state) throw TgError.badRequest("chat not found");
  return state;
}

function writableChat(bot: TelegramBotSim, params: TgParams): ChatState {
  const state = chatOf(bot, params);
  if (state.blocked) throw new TgError(403, "Forbidden: bot was blocked by the user");
  return state;
}

function threadOf(state: ChatState, params: TgParams): number | undefined {
  const threadId = params.int("message_thread_id");
  if (threadId === undefined || !state.chat.is_forum) return undefined;
  if (Number.isNaN(threadId) || !state.topics.has(threadId))
    throw TgError.badRequest("message thread not found");
  return threadId;
}

function replyOf(
  bot: TelegramBotSim,
  state: ChatState,
  params: TgParams,
  threadId: number | undefined,
) {
  let target: number | undefined;
  let allowWithout = params.bool("allow_sending_without_reply");
  if (params.has("reply_parameters")) {
    const rp = params.json("reply_parameters") as {
      message_id?: unknown;
      allow_sending_without_reply?: unknown;
    };
    if (typeof rp !== "object" || rp === null || typeof rp.message_id !== "number") {
      throw TgError.badRequest("can't parse reply parameters JSON object");
    }
    target = rp.message_id;
    allowWithout = rp.allow_sending_without_reply === true;
  } else if (params.has("reply_to_message_id")) {
    target = params.int("reply_to_message_id");
  }
  if (target === undefined) {
    // In a forum topic a message replies to the topic's opening message.
    return threadId !== undefined && bot.findMessage(state.chat.id, threadId)
      ? threadId
      : undefined;
  }
  const replied = bot.findMessage(state.chat.id, target);
  if (!replied || replied.deleted) {
    if (allowWithout) return undefined;
    throw TgError.badRequest("message to be replied not found");
  }
  return target;
}

function parseModeOf(params: TgParams, field = "parse_mode"): string | undefined {
  const mode = params.str(field);
  if (!mode) return undefined;
  const canonical = { markdownv2: "MarkdownV2", html: "HTML", markdown: "Markdown" }[
    mode.toLowerCase()
  ];
  if (!canonical) throw TgError.badRequest("unsupported parse_mode");
  return canonical;
}

/** Parses text (or a caption) like Telegram: parse_mode or explicit entities, trim, detect. */
function formatText(
  params: TgParams,
  field: "text" | "caption",
  /** Longest text in characters after parsing (Telegram: 4096; a test may lower it). */
  textLimit = 4096,
): { formatted: FormattedText; parseMode?: string; source: string } {
  const source = params.str(field) ?? "";
  const parseMode = parseModeOf(params);
  const entitiesField = field === "text" ? "entities" : "caption_entities";
  let formatted: FormattedText;
  if (parseMode) {
    try {
      formatted = parseFormatted(source, parseMode);
    } catch (err) {
      if (err instanceof EntityParseError)
        throw TgError.badRequest(`can't parse entities: ${err.message}`);
      throw err;
    }
  } else if (params.has(entitiesField)) {
    const entities = params.json(entitiesField);
    if (!Array.isArray(entities)) throw TgError.badRequest(`can't parse entities JSON object`);
    formatted = { text: source, entities: entities as TgEntity[] };
  } else {
    formatted = { text: source, entities: [] };
  }
  const trimmed = trimFormatted(formatted);
  const full = { text: trimmed.text, entities: withDetectedEntities(trimmed) };
  if (field === "text") {
    if (full.text.length === 0) throw TgError.badRequest("message text is empty");
    if (full.text.length > textLimit) throw TgError.badRequest("message is too long");
  } else if (full.text.length > 1024) {
    throw TgError.badRequest("message caption is too long");
  }
  return { formatted: full, source, ...(parseMode ? { parseMode } : {}) };
}

function markupOf(
  params: TgParams,
  state: ChatState,
  call: TgCallContext,
): InlineKeyboardMarkup | undefined {
  return checkReplyMarkup(params.raw.reply_markup, {
    chatType: state.chat.type,
    httpsOnly: call.httpsOnly,
  });
}

function messageIdOf(params: TgParams): number {
  const id = params.int("message_id");
  if (id === undefined || Number.isNaN(id))
    throw TgError.badRequest("message identifier is not specified");
  return id;
}

/** A bot message that may be edited; Telegram's errors otherwise. */
function editable(
  bot: TelegramBotSim,
  params: TgParams,
): { state: ChatState; message: TelegramMessage } {
  if (params.has("inline_message_id") && !params.has("chat_id")) {
    throw TgError.badRequest("MESSAGE_ID_INVALID");
  }
  const state = chatOf(bot, params);
  const message = bot.findMessage(state.chat.id, messageIdOf(params));
  if (!message || message.deleted) throw TgError.badRequest("message to edit not found");
  if (!message.fromBot || message.service) throw TgError.badRequest("message can't be edited");
  return { state, message };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

const NOT_MODIFIED =
  "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";

function snapshot(message: TelegramMessage): void {
  message.edits.push({
    ...(message.text !== undefined ? { text: message.text } : {}),
    ...(message.entities ? { entities: message.entities } : {}),
    ...(message.caption !== undefined ? { caption: message.caption } : {}),
    ...(message.replyMarkup ? { replyMarkup: message.replyMarkup } : {}),
    editDate: now(),
  });
}

function webhookUrlCheck(url: string, httpsOnly: boolean): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw TgError.badRequest("bad webhook: invalid webhook URL specified");
  }
  if (!/^https?:$/.test(parsed.protocol))
    throw TgError.badRequest("bad webhook: invalid webhook URL specified");
  if (httpsOnly) {
    if (parsed.protocol !== "https:")
      throw TgError.badRequest("bad webhook: An HTTPS URL must be provided for webhook");
    const port = parsed.port || "443";
    if (!["80", "88", "443", "8443"].includes(port)) {
      throw TgError.badRequest(
        "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
      );
    }
  }
}

function allowedUpdatesOf(params: TgParams): string[] | undefined {
  if (!params.has("allowed_updates")) return undefined;
  const value = params.json("allowed_updates");
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw TgError.badRequest("can't parse allowed_updates JSON array");
  }
  return value as string[];
}

function storeInputFile(
  bot: TelegramBotSim,
  params: TgParams,
  field: "document" | "photo",
): TgFile {
  const input = params.inputFile(field);
  if (!input) throw TgError.badRequest(`there is no ${field} in the request`);
  if ("upload" in input) {
    if (input.upload.data.length === 0) throw TgError.badRequest("file must be non-empty");
    return bot.storeFile(
      input.upload.data,
      input.upload.filename,
      field === "photo"
        ? "image/jpeg"
        : input.upload.contentType === "application/octet-stream"
          ? mimeFor(input.upload.filename)
          : input.upload.contentType,
      field === "photo" ? "photos" : "documents",
    );
  }
  const existing = bot.files.get(input.ref);
  if (existing) return existing;
  if (/^https?:\/\//.test(input.ref)) {
    const name = decodeURIComponent(new URL(input.ref).pathname.split("/").pop() || "file");
    const file = bot.storeFile(
      Buffer.alloc(0),
      name,
      mimeFor(name),
      field === "photo" ? "photos" : "documents",
    );
    file.url = input.ref;
    return file;
  }
  throw TgError.badRequest("wrong file identifier/HTTP URL specified");
}

/**
 * A message from the bot: the chat, topic, reply target and keyboard checked
 * like Telegram, then `content()` (text, caption, file), then stored.
 */
function send(
  bot: TelegramBotSim,
  call: TgCallContext,
  via: string,
  content: () => Partial<TelegramMessage>,
): Record<string, unknown> {
  const { params } = call;
  const state = writableChat(bot, params);
  const threadId = threadOf(state, params);
  const replyTo = replyOf(bot, state, params, threadId);
  const replyMarkup = markupOf(params, state, call);
  const message = bot.addMessage({
    chatId: state.chat.id,
    fromBot: true,
    from: bot.user,
    date: now(),
    edits: [],
    deleted: false,
    reactions: [],
    via,
    ...content(),
    ...(threadId !== undefined ? { threadId } : {}),
    ...(replyTo !== undefined ? { replyToMessageId: replyTo } : {}),
    ...(replyMarkup ? { replyMarkup } : {}),
  });
  return bot.wire(message);
}

function sendMedia(bot: TelegramBotSim, call: TgCallContext, field: "document" | "photo") {
  return send(bot, call, field === "photo" ? "sendPhoto" : "sendDocument", () => {
    const { params } = call;
    const caption = params.has("caption") ? formatText(params, "caption") : undefined;
    const file = storeInputFile(bot, params, field);
    return {
      ...(field === "photo" ? { photo: file } : { document: file }),
      ...(caption
        ? {
            caption: caption.formatted.text,
            captionEntities: caption.formatted.entities,
            sourceText: caption.source,
          }
        : {}),
    };
  });
}

/**
 * An edit of a bot message: the old version goes to `edits`, `change` applies
 * the new content, and the keyboard becomes `replyMarkup` (none when the call
 * left it out, as on Telegram).
 */
function edit(
  bot: TelegramBotSim,
  message: TelegramMessage,
  replyMarkup: InlineKeyboardMarkup | undefined,
  change: () => void,
): Record<string, unknown> {
  snapshot(message);
  change();
  if (replyMarkup) message.replyMarkup = replyMarkup;
  else delete message.replyMarkup;
  message.editDate = now();
  return bot.wire(message);
}

/** setWebhook with an empty URL and deleteWebhook: back to getUpdates. */
function removeWebhook(bot: TelegramBotSim, params: TgParams): Described {
  if (params.bool("drop_pending_updates")) bot.updates = [];
  const had = Boolean(bot.webhook);
  bot.setWebhook(undefined);
  return new Described(true, had ? "Webhook was deleted" : "Webhook is already deleted");
}

// Sticker/reaction emoji Telegram accepts in setMessageReaction (ReactionTypeEmoji).
const REACTIONS = new Set(
  "❤ 👍 👎 🔥 🥰 👏 😁 🤔 🤯 😱 🤬 😢 🎉 🤩 🤮 💩 🙏 👌 🕊 🤡 🥱 🥴 😍 🐳 ❤‍🔥 🌚 🌭 💯 🤣 ⚡ 🍌 🏆 💔 🤨 😐 🍓 🍾 💋 🖕 😈 😴 😭 🤓 👻 👨‍💻 👀 🎃 🙈 😇 😨 🤝 ✍ 🤗 🫡 🎅 🎄 ☃ 💅 🤪 🗿 🆒 💘 🙉 🦄 😘 💊 🙊 😎 👾 🤷‍♂ 🤷 🤷‍♀ 😡".split(
    " ",
  ),
);

const CHAT_ACTIONS = new Set([
  "typing",
  "upload_photo",
  "record_video",
  "upload_video",
  "record_voice",
  "upload_voice",
  "upload_document",
  "choose_sticker",
  "find_location",
  "record_video_note",
  "upload_video_note",
]);

function scopeKey(params: TgParams): string {
  const scope = params.has("scope") ? params.json("scope") : { type: "default" };
  return `${JSON.stringify(scope)}|${params.str("language_code") ?? ""}`;
}

/** Methods that count against Telegram's per-chat flood limits. */
export const FLOOD_LIMITED = new Set([
  "sendmessage",
  "senddocument",
  "sendphoto",
  "editmessagetext",
  "editmessagecaption",
  "editmessagereplymarkup",
]);

export const METHODS: Record<string, Handler> = {
  getMe: (bot) => ({
    ...bot.user,
    can_join_groups: true,
    can_read_all_group_messages: !bot.privacyMode,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
  }),

  getUpdates: async (bot, call) => {
    const { params } = call;
    const limit = Math.min(Math.max(params.int("limit") || 100, 1), 100);
    const allowedUpdates = allowedUpdatesOf(params);
    const offset = params.int("offset");
    return bot.getUpdates(
      {
        limit,
        timeoutSec: Math.max(params.int("timeout") || 0, 0),
        ...(offset !== undefined && Number.isInteger(offset) ? { offset } : {}),
        ...(allowedUpdates ? { allowedUpdates } : {}),
      },
      call.signal,
    );
  },

  setWebhook: (bot, call) => {
    const { params } = call;
    const url = params.str("url") ?? "";
    if (url === "") return removeWebhook(bot, params);
    webhookUrlCheck(url, call.httpsOnly);
    const secretToken = params.str("secret_token");
    if (secretToken !== undefined && !/^[A-Za-z0-9_-]{1,256}$/.test(secretToken)) {
      throw TgError.badRequest("secret token contains unallowed characters");
    }
    const maxConnections = params.int("max_connections") ?? 40;
    if (Number.isNaN(maxConnections) || maxConnections < 1 || maxConnections > 100) {
      throw TgError.badRequest("bad webhook: max_connections must be between 1 and 100");
    }
    const allowedUpdates = allowedUpdatesOf(params);
    if (allowedUpdates) bot.allowedUpdates = allowedUpdates;
    if (params.bool("drop_pending_updates")) bot.updates = [];
    const config: TgWebhookConfig = {
      url,
      maxConnections,
      ...(secretToken ? { secretToken } : {}),
      ...(bot.allowedUpdates ? { allowedUpdates: bot.allowedUpdates } : {}),
    };
    const current = bot.webhook;
    const same =
      current?.url === config.url &&
      current.secretToken === config.secretToken &&
      current.maxConnections === config.maxConnections &&
      sameJson(current.allowedUpdates, config.allowedUpdates);
    if (same) return new Described(true, "Webhook is already set");
    bot.setWebhook(config);
    return new Described(true, "Webhook was set");
  },

  deleteWebhook: (bot, call) => removeWebhook(bot, call.params),

  getWebhookInfo: (bot) => {
    const hook = bot.webhook;
    return {
      url: hook?.url ?? "",
      has_custom_certificate: false,
      pending_update_count: bot.updates.length,
      ...(hook
        ? {
            max_connections: hook.maxConnections,
            ip_address: "127.0.0.1",
            ...(hook.allowedUpdates ? { allowed_updates: hook.allowedUpdates } : {}),
            ...(hook.lastErrorDate ? { last_error_date: hook.lastErrorDate } : {}),
            ...(hook.lastErrorMessage ? { last_error_message: hook.lastErrorMessage } : {}),
          }
        : {}),
    };
  },

  sendMessage: (bot, call) =>
    send(bot, call, "sendMessage", () => {
      const { formatted, parseMode, source } = formatText(call.params, "text", bot.messageLimit);
      return {
        text: formatted.text,
        entities: formatted.entities,
        sourceText: source,
        ...(parseMode ? { parseMode } : {}),
      };
    }),

  editMessageText: (bot, call) => {
    const { params } = call;
    const { state, message } = editable(bot, params);
    if (message.text === undefined)
      throw TgError.badRequest("there is no text in the message to edit");
    const { formatted, parseMode, source } = formatText(params, "text", bot.messageLimit);
    // Omitting reply_markup removes the inline keyboard, as on Telegram.
    const replyMarkup = markupOf(params, state, call);
    if (
      formatted.text === message.text &&
      sameJson(formatted.entities, message.entities ?? []) &&
      sameJson(replyMarkup, message.replyMarkup)
    ) {
      throw TgError.badRequest(NOT_MODIFIED);
    }
    return edit(bot, message, replyMarkup, () => {
      message.text = formatted.text;
      message.entities = formatted.entities;
      message.sourceText = source;
      if (parseMode) message.parseMode = parseMode;
      else delete message.parseMode;
    });
  },

  editMessageCaption: (bot, call) => {
    const { params } = call;
    const { state, message } = editable(bot, params);
    if (!message.document && !message.photo)
      throw TgError.badRequest("there is no caption in the message to edit");
    const { formatted, source } = formatText(params, "caption");
    const replyMarkup = markupOf(params, state, call);
    if (formatted.text === (message.caption ?? "") && sameJson(replyMarkup, message.replyMarkup)) {
      throw TgError.badRequest(NOT_MODIFIED);
    }
    return edit(bot, message, replyMarkup, () => {
      message.caption = formatted.text;
      message.captionEntities = formatted.entities;
      message.sourceText = source;
    });
  },

  editMessageReplyMarkup: (bot, call) => {
    const { params } = call;
    const { state, message } = editable(bot, params);
    const replyMarkup = markupOf(params, state, call);
    if (sameJson(replyMarkup, message.replyMarkup)) throw TgError.badRequest(NOT_MODIFIED);
    return edit(bot, message, replyMarkup, () => {});
  },

  deleteMessage: (bot, call) => {
    const state = chatOf(bot, call.params);
    const message = bot.findMessage(state.chat.id, messageIdOf(call.params));
    if (!message || message.deleted) throw TgError.badRequest("message to delete not found");
    if (!message.fromBot && state.chat.type !== "private" && !state.botIsAdmin) {
      throw TgError.badRequest("message can't be deleted");
    }
    message.deleted = true;
    return true;
  },

  deleteMessages: (bot, call) => {
    const state = chatOf(bot, call.params);
    const ids = call.params.json("message_ids");
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > 100) {
      throw TgError.badRequest("message identifiers are not specified");
    }
    for (const id of ids) {
      const message = bot.findMessage(state.chat.id, Number(id));
      if (message && (message.fromBot || state.chat.type === "private" || state.botIsAdmin))
        message.deleted = true;
    }
    return true;
  },

  answerCallbackQuery: (bot, call) => {
    const { params } = call;
    const id = params.str("callback_query_id") ?? "";
    const query = bot.callbackQueries.get(id);
    if (!query || query.answered) {
      throw TgError.badRequest(
        "query is too old and response timeout expired or query ID is invalid",
      );
    }
    const text = params.str("text");
    if (text && text.length > 200) throw TgError.badRequest("MESSAGE_TOO_LONG");
    query.answered = true;
    const url = params.str("url");
    const cacheTime = params.int("cache_time");
    bot.callbackAnswers.push({
      callbackQueryId: id,
      showAlert: params.bool("show_alert"),
      at: Date.now(),
      ...(text ? { text } : {}),
      ...(url ? { url } : {}),
      ...(cacheTime !== undefined && !Number.isNaN(cacheTime) ? { cacheTime } : {}),
    });
    return true;
  },

  sendChatAction: (bot, call) => {
    const { params } = call;
    const state = writableChat(bot, params);
    const action = params.str("action") ?? "";
    if (!CHAT_ACTIONS.has(action)) throw TgError.badRequest("wrong parameter action in request");
    const threadId = threadOf(state, params);
    bot.chatActions.push({
      chatId: state.chat.id,
      action,
      at: Date.now(),
      ...(threadId !== undefined ? { threadId } : {}),
    });
    return true;
  },

  sendDocument: (bot, call) => sendMedia(bot, call, "document"),

  sendPhoto: (bot, call) => sendMedia(bot, call, "photo"),

  getFile: (bot, call) => {
    const file = bot.files.get(call.params.str("file_id") ?? "");
    if (!file) throw TgError.badRequest("invalid file_id");
    return {
      file_id: file.fileId,
      file_unique_id: file.fileUniqueId,
      file_size: file.data.length,
      file_path: file.filePath,
    };
  },

  setMyCommands: (bot, call) => {
    const commands = call.params.json("commands");
    if (!Array.isArray(commands)) throw TgError.badRequest("can't parse commands JSON object");
    if (commands.length > 100) throw TgError.badRequest("BOT_COMMANDS_TOO_MUCH");
    for (const c of commands as { command?: unknown; description?: unknown }[]) {
      if (typeof c?.command !== "string" || !/^[a-z0-9_]{1,32}$/.test(c.command)) {
        throw TgError.badRequest("BOT_COMMAND_INVALID");
      }
      if (
        typeof c.description !== "string" ||
        c.description.length < 1 ||
        c.description.length > 256
      ) {
        throw TgError.badRequest("BOT_COMMAND_DESCRIPTION_INVALID");
      }
    }
    bot.commands.set(scopeKey(call.params), commands as { command: string; description: string }[]);
    return true;
  },

  getMyCommands: (bot, call) => bot.commands.get(scopeKey(call.params)) ?? [],

  deleteMyCommands: (bot, call) => {
    bot.commands.delete(scopeKey(call.params));
    return true;
  },

  setChatMenuButton: (bot, call) => {
    const { params } = call;
    let key = "default";
    if (params.has("chat_id")) {
      const state = chatOf(bot, params);
      if (state.chat.type !== "private") throw TgError.badRequest("chat not found");
      key = String(state.chat.id);
    }
    const button = (
      params.has("menu_button") ? params.json("menu_button") : { type: "default" }
    ) as Record<string, unknown>;
    if (
      typeof button !== "object" ||
      button === null ||
      !["commands", "web_app", "default"].includes(String(button.type))
    ) {
      throw TgError.badRequest("can't parse menu button JSON object");
    }
    if (button.type === "web_app") {
      if (typeof button.text !== "string" || !button.text)
        throw TgError.badRequest("menu button text is empty");
      const webApp = button.web_app as { url?: unknown } | undefined;
      checkWebAppButtonUrl(webApp?.url, { chatType: "private", httpsOnly: call.httpsOnly });
    }
    bot.menuButtons.set(key, button);
    return true;
  },

  getChatMenuButton: (bot, call) => {
    const key = call.params.has("chat_id") ? String(chatOf(bot, call.params).chat.id) : "default";
    return bot.menuButtons.get(key) ?? bot.menuButtons.get("default") ?? { type: "commands" };
  },

  getChat: (bot, call) => {
    const state = chatOf(bot, call.params);
    return {
      ...bot.chatWire(state.chat),
      accent_color_id: 0,
      max_reaction_count: 11,
      accepted_gift_types: {
        unlimited_gifts: false,
        limited_gifts: false,
        unique_gifts: false,
        premium_subscription: false,
      },
    };
  },

  getChatAdministrators: (bot, call) => {
    const state = chatOf(bot, call.params);
    if (state.chat.type === "private")
      throw TgError.badRequest("there are no administrators in the private chat");
    const member = (user: TgUser, status: "creator" | "administrator") => ({
      status,
      user,
      is_anonymous: false,
      ...(status === "administrator" ? { can_be_edited: false, can_manage_chat: true } : {}),
    });
    return [
      ...state.admins.map((u, i) =>
        member({ is_bot: false, ...u }, i === 0 ? "creator" : "administrator"),
      ),
      ...(state.botIsAdmin ? [member(bot.user, "administrator")] : []),
    ];
  },

  createForumTopic: (bot, call) => {
    const state = chatOf(bot, call.params);
    if (state.chat.type !== "supergroup" || !state.chat.is_forum)
      throw TgError.badRequest("the chat is not a forum");
    const name = call.params.str("name") ?? "";
    if (name.length < 1 || name.length > 128) throw TgError.badRequest("TOPIC_TITLE_EMPTY");
    const iconColor = call.params.int("icon_color") ?? 7322096;
    const threadId = bot.createTopic(state.chat.id, name, iconColor, bot.user, true);
    return { message_thread_id: threadId, name, icon_color: iconColor };
  },

  setMessageReaction: (bot, call) => {
    const state = chatOf(bot, call.params);
    const message = bot.findMessage(state.chat.id, messageIdOf(call.params));
    if (!message || message.deleted) throw TgError.badRequest("message to react not found");
    const reaction = call.params.has("reaction") ? call.params.json("reaction") : [];
    if (!Array.isArray(reaction))
      throw TgError.badRequest("can't parse reaction types JSON object");
    const emoji: string[] = [];
    for (const r of reaction as { type?: unknown; emoji?: unknown }[]) {
      if (
        r?.type !== "emoji" ||
        typeof r.emoji !== "string" ||
        !REACTIONS.has(r.emoji.replace(/\uFE0F/g, ""))
      ) {
        throw TgError.badRequest("REACTION_INVALID");
      }
      emoji.push(r.emoji);
    }
    message.reactions = emoji;
    return true;
  },
};

/** Bot API method names are case-insensitive. */
export const METHOD_INDEX = new Map(
  Object.entries(METHODS).map(([name, handler]) => [name.toLowerCase(), { name, handler }]),
);
