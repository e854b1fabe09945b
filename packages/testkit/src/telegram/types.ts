import type { RateLimitRule } from "../platform-kit/rate-limit.ts";
import type { TgEntity } from "./format.ts";
import type { InlineKeyboardMarkup } from "./keyboard.ts";

export type { TgEntity } from "./format.ts";
export type { InlineKeyboardButton, InlineKeyboardMarkup } from "./keyboard.ts";
export type { WebAppInitDataInput, WebAppUser } from "./webapp.ts";

export interface TelegramRateLimits {
  /** Messages + edits per private chat (Telegram: about 1/s, short bursts tolerated). */
  privateChat?: RateLimitRule;
  /** Messages + edits per group (Telegram: 20/min). */
  groupChat?: RateLimitRule;
  /** Messages + edits across all chats (Telegram: about 30/s). */
  global?: RateLimitRule;
}

export interface TelegramBotOptions {
  botToken: string;
  botUsername?: string;
  botName?: string;
  /** Group privacy mode (default on): in groups the bot only gets commands, mentions and replies. */
  privacyMode?: boolean;
}

export interface TelegramEmulatorOptions extends TelegramBotOptions {
  port?: number;
  /** Per-chat and global send/edit limits; `false` turns counting off (forceRateLimit still works). */
  rateLimits?: TelegramRateLimits | false;
  /** Enforce Telegram's HTTPS-only rules for webhook and Web App URLs (off: tests run on http://127.0.0.1). */
  httpsOnly?: boolean;
  /** Backoff between webhook redeliveries of a failed update; it is dropped after the last. */
  webhookRetryDelaysMs?: number[];
  webhookTimeoutMs?: number;
}

export interface TgUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  last_name?: string;
  username?: string;
  language_code?: string;
}

export interface TgUserInput {
  id: number;
  first_name: string;
  last_name?: string;
  username?: string;
  language_code?: string;
}

export type TgChatType = "private" | "group" | "supergroup" | "channel";

export interface TgChatInput {
  id: number;
  type: TgChatType;
  title?: string;
  username?: string;
  first_name?: string;
  last_name?: string;
  is_forum?: boolean;
}

export type TgUpdate = { update_id: number } & Record<string, unknown>;

export interface TgFile {
  fileId: string;
  fileUniqueId: string;
  filePath: string;
  fileName?: string;
  mimeType?: string;
  data: Buffer;
  /** Set when a message referenced a URL instead of uploading bytes. */
  url?: string;
}

export interface TgMessageVersion {
  text?: string;
  entities?: TgEntity[];
  caption?: string;
  replyMarkup?: InlineKeyboardMarkup;
  /** Unix seconds of the edit that replaced this version. */
  editDate: number;
}

export interface TelegramMessage {
  chatId: number;
  messageId: number;
  /** Forum topic the message belongs to. */
  threadId?: number;
  fromBot: boolean;
  from: TgUser;
  date: number;
  text?: string;
  entities?: TgEntity[];
  /** Text as the sender wrote it, before parse_mode parsing. */
  sourceText?: string;
  parseMode?: string;
  caption?: string;
  captionEntities?: TgEntity[];
  document?: TgFile;
  photo?: TgFile;
  voice?: TgFile;
  video?: TgFile;
  replyMarkup?: InlineKeyboardMarkup;
  replyToMessageId?: number;
  /** Earlier versions, oldest first; the fields above hold the latest. */
  edits: TgMessageVersion[];
  editDate?: number;
  deleted: boolean;
  /** Emoji the bot set with setMessageReaction. */
  reactions: string[];
  /** Service payload (e.g. forum_topic_created). */
  service?: Record<string, unknown>;
  /** Method (or "user") that created it. */
  via: string;
}

export interface TelegramCall {
  method: string;
  /** Bot the call authenticated as (token). */
  token: string;
  params: Record<string, unknown>;
  files: { field: string; filename: string; size: number }[];
  httpStatus: number;
  response: Record<string, unknown>;
  /** "webhook_reply" when the call came back in a webhook response body. */
  via: "http" | "webhook_reply";
  at: number;
}

export interface TelegramFailure {
  error_code?: number;
  description?: string;
  parameters?: { retry_after?: number; migrate_to_chat_id?: number };
  /** Drop the connection without answering. */
  network?: boolean;
}

export interface TgDocumentInput {
  name: string;
  content: string | Buffer;
  mimeType?: string;
}

export interface TgUserSendsInput {
  chat: TgChatInput;
  from: TgUserInput;
  text?: string;
  /** Forum topic (message_thread_id); the topic is created if new. */
  messageThreadId?: number;
  /** message_id this message replies to. */
  replyTo?: number;
  document?: TgDocumentInput;
  /** A picture (sent as a photo: Telegram recompresses it to JPEG). */
  photo?: { content: string | Buffer };
  /** A voice note (OGG/Opus). */
  voice?: { content: string | Buffer; duration?: number };
  video?: TgDocumentInput;
  /** Override the detected entities. */
  entities?: TgEntity[];
}

export interface TgUserSendsResult {
  update: TgUpdate;
  message: Record<string, unknown>;
  /** False when group privacy mode (or allowed_updates) kept the update from the bot. */
  delivered: boolean;
}

export interface TgClickInput {
  from: TgUserInput;
  chatId: number;
  messageId: number;
  data: string;
}

export interface TgWebhookConfig {
  url: string;
  secretToken?: string;
  maxConnections: number;
  allowedUpdates?: string[];
  lastErrorDate?: number;
  lastErrorMessage?: string;
}

export interface TgWebhookDelivery {
  updateId: number;
  attempt: number;
  url: string;
  status: number;
  /** Error text as getWebhookInfo would report it. */
  error?: string;
  secretToken?: string;
  at: number;
}

export interface TgChatAction {
  chatId: number;
  action: string;
  threadId?: number;
  at: number;
}

export interface TgCallbackAnswer {
  callbackQueryId: string;
  text?: string;
  showAlert: boolean;
  url?: string;
  cacheTime?: number;
  at: number;
}

export interface TgBotCommand {
  command: string;
  description: string;
}
