/**
 * One emulated bot: its chats and messages, the update queue (long polling or
 * webhook delivery), and the helpers tests use to act as Telegram users.
 */
import { randomBytes } from "node:crypto";
import { STATUS_CODES } from "node:http";
import { postTo } from "../platform-kit/deliver.ts";
import type { ChangeSignal } from "../platform-kit/signal.ts";
import { TgError } from "./errors.ts";
import { detectEntities, type TgEntity } from "./format.ts";
import { findCallbackButton } from "./keyboard.ts";
import type {
  TelegramBotOptions,
  TelegramMessage,
  TgBotCommand,
  TgCallbackAnswer,
  TgChatAction,
  TgChatInput,
  TgClickInput,
  TgFile,
  TgUpdate,
  TgUser,
  TgUserInput,
  TgUserSendsInput,
  TgUserSendsResult,
  TgWebhookConfig,
  TgWebhookDelivery,
} from "./types.ts";

export interface TelegramMessagesQuery {
  /** Only messages in this forum topic. */
  threadId?: number;
  /** Include what users sent (default: only the bot's messages). */
  includeUsers?: boolean;
  includeDeleted?: boolean;
}

export interface ChatState {
  chat: TgChatInput;
  nextMessageId: number;
  topics: Map<number, { name: string; iconColor: number }>;
  botIsAdmin: boolean;
  /** The chat's administrators besides the bot (getChatAdministrators); the first is the creator. */
  admins: TgUserInput[];
  /** The user blocked the bot (private chats): sends fail with 403. */
  blocked: boolean;
  chatInstance: string;
}

/** What a bot needs from the emulator around it. */
export interface BotEnv {
  signal: ChangeSignal;
  webhookRetryDelaysMs: number[];
  webhookTimeoutMs: number;
  /** Runs a method named in a webhook response body (grammY's webhook reply). */
  webhookReply(bot: TelegramBotSim, method: string, params: Record<string, unknown>): Promise<void>;
}

/** Update types Telegram leaves out unless allowed_updates asks for them. */
const OPT_IN_UPDATES = ["chat_member", "message_reaction", "message_reaction_count"];

export class TelegramBotSim {
  readonly token: string;
  readonly id: number;
  readonly username: string;
  readonly name: string;
  privacyMode: boolean;
  /** Longest message text Telegram takes (4096); a test lowers it to see long replies split. */
  messageLimit = 4096;
  readonly chats = new Map<number, ChatState>();
  readonly messagesByChat = new Map<number, TelegramMessage[]>();
  readonly files = new Map<string, TgFile>();
  readonly callbackQueries = new Map<
    string,
    { answered: boolean; chatId: number; messageId: number; fromId: number }
  >();
  readonly chatActions: TgChatAction[] = [];
  readonly callbackAnswers: TgCallbackAnswer[] = [];
  readonly webhookDeliveries: TgWebhookDelivery[] = [];
  readonly commands = new Map<string, TgBotCommand[]>();
  readonly menuButtons = new Map<string, Record<string, unknown>>();
  /** Pending (unconfirmed) updates, oldest first. */
  updates: TgUpdate[] = [];
  allowedUpdates?: string[];
  webhook?: TgWebhookConfig;

  readonly #env: BotEnv;
  #nextUpdateId = 100_000_001;
  #fileCounter = 0;
  #poller?: { wake: () => void; conflict: () => void };
  #delivering = false;
  #sleep?: { timer: NodeJS.Timeout; resolve: () => void };
  #closed = false;

  constructor(options: TelegramBotOptions, env: BotEnv) {
    const match = /^(\d+):\S+$/.exec(options.botToken);
    if (!match)
      throw new Error(`Bot token must look like "<bot id>:<secret>", got "${options.botToken}"`);
    this.token = options.botToken;
    this.id = Number(match[1]);
    this.username = options.botUsername ?? "lobu_test_bot";
    this.name = options.botName ?? "Lobu";
    this.privacyMode = options.privacyMode ?? true;
    this.#env = env;
  }

  /** Whether a getUpdates long poll is waiting right now. */
  get polling(): boolean {
    return this.#poller !== undefined;
  }

  get user(): TgUser {
    return { id: this.id, is_bot: true, first_name: this.name, username: this.username };
  }

  // ---------------------------------------------------------------- model

  ensureChat(input: TgChatInput, from?: TgUserInput): ChatState {
    let state = this.chats.get(input.id);
    const chat: TgChatInput = { ...state?.chat, ...input };
    if (chat.type === "private" && from) {
      chat.first_name ??= from.first_name;
      if (from.last_name) chat.last_name ??= from.last_name;
      if (from.username) chat.username ??= from.username;
    }
    if (chat.type !== "private") chat.title ??= `Chat ${Math.abs(chat.id)}`;
    if (!state) {
      state = {
        chat,
        nextMessageId: 1,
        topics: new Map(),
        botIsAdmin: false,
        admins: [],
        blocked: false,
        chatInstance: String(BigInt.asIntN(64, BigInt(`0x${randomBytes(8).toString("hex")}`))),
      };
      this.chats.set(chat.id, state);
      this.messagesByChat.set(chat.id, []);
    } else {
      state.chat = chat;
    }
    return state;
  }

  chatMessages(chatId: number): TelegramMessage[] {
    let list = this.messagesByChat.get(chatId);
    if (!list) {
      list = [];
      this.messagesByChat.set(chatId, list);
    }
    return list;
  }

  findMessage(chatId: number, messageId: number): TelegramMessage | undefined {
    return this.messagesByChat.get(chatId)?.find((m) => m.messageId === messageId);
  }

  addMessage(message: Omit<TelegramMessage, "messageId">): TelegramMessage {
    const state = this.chats.get(message.chatId);
    if (!state) throw new Error(`unknown chat ${message.chatId}`);
    const full: TelegramMessage = { ...message, messageId: state.nextMessageId++ };
    this.chatMessages(message.chatId).push(full);
    return full;
  }

  storeFile(
    data: Buffer,
    fileName: string | undefined,
    mimeType: string | undefined,
    kind: "documents" | "photos" | "voice" | "videos",
  ): TgFile {
    this.#fileCounter++;
    const ext = fileName?.includes(".")
      ? fileName.slice(fileName.lastIndexOf("."))
      : kind === "photos"
        ? ".jpg"
        : "";
    const prefix = {
      photos: "AgACAgIAAxkBAAI",
      documents: "BQACAgIAAxkBAAI",
      voice: "AwACAgIAAxkBAAI",
      videos: "BAACAgIAAxkBAAI",
    }[kind];
    const file: TgFile = {
      fileId: `${prefix}${randomBytes(24).toString("base64url")}`,
      fileUniqueId: `AgAD${randomBytes(9).toString("base64url")}`,
      filePath: `${kind}/file_${this.#fileCounter}${ext}`,
      data,
      ...(fileName ? { fileName } : {}),
      ...(mimeType ? { mimeType } : {}),
    };
    this.files.set(file.fileId, file);
    return file;
  }

  chatWire(chat: TgChatInput): Record<string, unknown> {
    if (chat.type === "private") {
      return {
        id: chat.id,
        first_name: chat.first_name ?? "",
        ...(chat.last_name ? { last_name: chat.last_name } : {}),
        ...(chat.username ? { username: chat.username } : {}),
        type: "private",
      };
    }
    return {
      id: chat.id,
      title: chat.title ?? "",
      ...(chat.username ? { username: chat.username } : {}),
      type: chat.type,
      ...(chat.is_forum ? { is_forum: true } : {}),
    };
  }

  /** The Message object Telegram returns and sends for a stored message. */
  wire(m: TelegramMessage, withReply = true): Record<string, unknown> {
    const state = this.chats.get(m.chatId);
    const out: Record<string, unknown> = { message_id: m.messageId };
    if (m.threadId !== undefined) out.message_thread_id = m.threadId;
    out.from = m.from;
    out.chat = state ? this.chatWire(state.chat) : { id: m.chatId };
    out.date = m.date;
    if (m.threadId !== undefined && state?.chat.is_forum) out.is_topic_message = true;
    if (withReply && m.replyToMessageId !== undefined) {
      const replied = this.findMessage(m.chatId, m.replyToMessageId);
      if (replied) out.reply_to_message = this.wire(replied, false);
    }
    if (m.editDate !== undefined) out.edit_date = m.editDate;
    if (m.text !== undefined) {
      out.text = m.text;
      if (m.entities?.length) out.entities = m.entities;
    }
    if (m.document) {
      out.document = {
        ...(m.document.fileName ? { file_name: m.document.fileName } : {}),
        ...(m.document.mimeType ? { mime_type: m.document.mimeType } : {}),
        file_id: m.document.fileId,
        file_unique_id: m.document.fileUniqueId,
        file_size: m.document.data.length,
      };
    }
    if (m.photo) {
      out.photo = [
        {
          file_id: m.photo.fileId,
          file_unique_id: m.photo.fileUniqueId,
          file_size: m.photo.data.length,
          width: 1280,
          height: 720,
        },
      ];
    }
    if (m.voice) {
      out.voice = {
        duration: 3,
        mime_type: m.voice.mimeType ?? "audio/ogg",
        file_id: m.voice.fileId,
        file_unique_id: m.voice.fileUniqueId,
        file_size: m.voice.data.length,
      };
    }
    if (m.video) {
      out.video = {
        width: 1280,
        height: 720,
        duration: 5,
        ...(m.video.fileName ? { file_name: m.video.fileName } : {}),
        mime_type: m.video.mimeType ?? "video/mp4",
        file_id: m.video.fileId,
        file_unique_id: m.video.fileUniqueId,
        file_size: m.video.data.length,
      };
    }
    if (m.caption !== undefined) {
      out.caption = m.caption;
      if (m.captionEntities?.length) out.caption_entities = m.captionEntities;
    }
    if (m.replyMarkup) out.reply_markup = m.replyMarkup;
    if (m.service) Object.assign(out, m.service);
    return out;
  }

  /** Creates a forum topic: its id is the id of the service message that opens it. */
  createTopic(
    chatId: number,
    name: string,
    iconColor: number,
    creator: TgUser,
    fromBot: boolean,
  ): number {
    const state = this.chats.get(chatId);
    if (!state) throw new Error(`unknown chat ${chatId}`);
    const service = this.addMessage({
      chatId,
      fromBot,
      from: creator,
      date: now(),
      edits: [],
      deleted: false,
      reactions: [],
      service: { forum_topic_created: { name, icon_color: iconColor } },
      via: fromBot ? "createForumTopic" : "user",
    });
    service.threadId = service.messageId;
    state.topics.set(service.messageId, { name, iconColor });
    return service.messageId;
  }

  /** A group's administrators as this bot's getChatAdministrators reports them; the first is its creator. */
  setChatAdmins(chat: TgChatInput, admins: TgUserInput[]): void {
    this.ensureChat(chat).admins = [...admins];
  }

  /** Messages in a chat, oldest first; by default only the bot's, without deleted ones. */
  messages(chatId: number, query: TelegramMessagesQuery = {}): TelegramMessage[] {
    return this.chatMessages(chatId).filter(
      (m) =>
        (query.includeUsers || m.fromBot) &&
        (query.includeDeleted || !m.deleted) &&
        (query.threadId === undefined || m.threadId === query.threadId),
    );
  }

  // ---------------------------------------------------------------- users acting

  /** A user sends a message; the bot gets the update unless privacy mode hides it. */
  userSends(input: TgUserSendsInput): TgUserSendsResult {
    const state = this.ensureChat(input.chat, input.from);
    const from: TgUser = { is_bot: false, ...input.from };
    let threadId: number | undefined;
    if (input.messageThreadId !== undefined && state.chat.is_forum) {
      threadId = input.messageThreadId;
      if (!state.topics.has(threadId))
        state.topics.set(threadId, { name: `Topic ${threadId}`, iconColor: 7322096 });
    }
    let replyTo = input.replyTo;
    if (replyTo !== undefined && !this.findMessage(state.chat.id, replyTo)) {
      throw new Error(`userSends: no message ${replyTo} in chat ${state.chat.id} to reply to`);
    }
    // Messages in a topic reply to the topic's opening service message unless they reply elsewhere.
    if (
      replyTo === undefined &&
      threadId !== undefined &&
      this.findMessage(state.chat.id, threadId)
    ) {
      replyTo = threadId;
    }
    const text = input.text;
    const entities = input.entities ?? (text ? detectEntities(text) : []);
    const document = input.document
      ? this.storeFile(
          typeof input.document.content === "string"
            ? Buffer.from(input.document.content)
            : input.document.content,
          input.document.name,
          input.document.mimeType ?? "application/octet-stream",
          "documents",
        )
      : undefined;
    const buffer = (c: string | Buffer) => (typeof c === "string" ? Buffer.from(c) : c);
    const photo = input.photo
      ? this.storeFile(buffer(input.photo.content), undefined, "image/jpeg", "photos")
      : undefined;
    const voice = input.voice
      ? this.storeFile(buffer(input.voice.content), undefined, "audio/ogg", "voice")
      : undefined;
    const video = input.video
      ? this.storeFile(
          buffer(input.video.content),
          input.video.name,
          input.video.mimeType ?? "video/mp4",
          "videos",
        )
      : undefined;
    const media = {
      ...(document ? { document } : {}),
      ...(photo ? { photo } : {}),
      ...(voice ? { voice } : {}),
      ...(video ? { video } : {}),
    };
    const message = this.addMessage({
      chatId: state.chat.id,
      fromBot: false,
      from,
      date: now(),
      edits: [],
      deleted: false,
      reactions: [],
      via: "user",
      ...(threadId !== undefined ? { threadId } : {}),
      ...(replyTo !== undefined ? { replyToMessageId: replyTo } : {}),
      // Media carry their text as a caption, as Telegram sends them.
      ...(Object.keys(media).length
        ? {
            ...media,
            ...(text !== undefined ? { caption: text, captionEntities: entities } : {}),
          }
        : { text: text ?? "", entities }),
    });
    const wire = this.wire(message);
    const update: TgUpdate = { update_id: this.#nextUpdateId++, message: wire };
    const visible = this.#visibleToBot(state, message, entities, text ?? "");
    const delivered = visible && this.enqueue(update);
    this.#env.signal.notify();
    return { update, message: wire, delivered };
  }

  #visibleToBot(
    state: ChatState,
    message: TelegramMessage,
    entities: TgEntity[],
    text: string,
  ): boolean {
    const type = state.chat.type;
    if (type === "private" || !this.privacyMode || state.botIsAdmin) return true;
    const replied =
      message.replyToMessageId !== undefined
        ? this.findMessage(state.chat.id, message.replyToMessageId)
        : undefined;
    if (replied?.fromBot && !replied.service) return true;
    const me = `@${this.username}`.toLowerCase();
    return entities.some((e) => {
      const part = text.slice(e.offset, e.offset + e.length).toLowerCase();
      if (e.type === "mention") return part === me;
      if (e.type === "bot_command") return !part.includes("@") || part.endsWith(me);
      return false;
    });
  }

  /** A user presses an inline button carrying `data` on a bot message. */
  clickCallback(input: TgClickInput): {
    update: TgUpdate;
    callbackQueryId: string;
    delivered: boolean;
  } {
    const state = this.chats.get(input.chatId);
    const message = this.findMessage(input.chatId, input.messageId);
    if (!state || !message || message.deleted) {
      throw new Error(`clickCallback: no message ${input.messageId} in chat ${input.chatId}`);
    }
    if (!findCallbackButton(message.replyMarkup, input.data)) {
      const available = message.replyMarkup?.inline_keyboard
        .flat()
        .map((b) => b.callback_data)
        .filter(Boolean);
      throw new Error(
        `clickCallback: message ${input.messageId} has no button with callback_data "${input.data}" (has: ${available?.join(", ") || "none"})`,
      );
    }
    const id = BigInt.asUintN(63, BigInt(`0x${randomBytes(8).toString("hex")}`)).toString();
    this.callbackQueries.set(id, {
      answered: false,
      chatId: input.chatId,
      messageId: input.messageId,
      fromId: input.from.id,
    });
    const update: TgUpdate = {
      update_id: this.#nextUpdateId++,
      callback_query: {
        id,
        from: { is_bot: false, ...input.from },
        message: this.wire(message),
        chat_instance: state.chatInstance,
        data: input.data,
      },
    };
    const delivered = this.enqueue(update);
    this.#env.signal.notify();
    return { update, callbackQueryId: id, delivered };
  }

  // ---------------------------------------------------------------- updates

  /** Queues an update for getUpdates or the webhook; false if allowed_updates filters it out. */
  enqueue(update: TgUpdate): boolean {
    const kind = Object.keys(update).find((k) => k !== "update_id") ?? "";
    const allowed = this.allowedUpdates;
    const wanted = allowed?.length ? allowed.includes(kind) : !OPT_IN_UPDATES.includes(kind);
    if (!wanted) return false;
    this.updates.push(update);
    this.#poller?.wake();
    this.#kickWebhook();
    this.#env.signal.notify();
    return true;
  }

  /** getUpdates' offset: confirms (drops) updates below it; negative keeps the last -offset. */
  confirm(offset: number | undefined): void {
    if (offset === undefined || offset === 0) return;
    if (offset > 0) this.updates = this.updates.filter((u) => u.update_id >= offset);
    else this.updates = this.updates.slice(offset);
  }

  async getUpdates(
    params: { offset?: number; limit: number; timeoutSec: number; allowedUpdates?: string[] },
    signal: AbortSignal,
  ): Promise<TgUpdate[]> {
    if (this.webhook) {
      throw new TgError(
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
      );
    }
    if (params.allowedUpdates) this.allowedUpdates = params.allowedUpdates;
    this.confirm(params.offset);
    this.#poller?.conflict();
    if (this.updates.length === 0 && params.timeoutSec > 0 && !this.#closed) {
      await new Promise<void>((resolve, reject) => {
        const cleanup = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", wake);
          if (this.#poller === poller) this.#poller = undefined;
        };
        const wake = () => {
          cleanup();
          resolve();
        };
        const poller = {
          wake,
          conflict: () => {
            cleanup();
            reject(
              new TgError(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
              ),
            );
          },
        };
        const timer = setTimeout(wake, params.timeoutSec * 1000);
        signal.addEventListener("abort", wake);
        this.#poller = poller;
        this.#env.signal.notify();
      });
    }
    this.#env.signal.notify();
    return this.updates.slice(0, params.limit);
  }

  setWebhook(config: TgWebhookConfig | undefined): void {
    this.webhook = config;
    if (config) {
      this.#poller?.conflict();
      this.#kickWebhook();
    } else {
      this.#cancelSleep();
    }
    this.#env.signal.notify();
  }

  #kickWebhook(): void {
    if (!this.webhook || this.#delivering || this.#closed || this.updates.length === 0) return;
    void this.#deliverLoop();
  }

  async #deliverLoop(): Promise<void> {
    this.#delivering = true;
    try {
      while (this.webhook && !this.#closed && this.updates.length > 0) {
        const update = this.updates[0] as TgUpdate;
        const hook = this.webhook;
        const done = await this.#deliverOne(update, hook);
        // The webhook changed during retries: start over with whatever is set now.
        if (!done) continue;
        if (this.updates[0] === update) this.updates.shift();
        this.#env.signal.notify();
      }
    } finally {
      this.#delivering = false;
    }
  }

  /** Posts one update until it is accepted or the retries run out; false if the webhook changed meanwhile. */
  async #deliverOne(update: TgUpdate, hook: TgWebhookConfig): Promise<boolean> {
    const delays = this.#env.webhookRetryDelaysMs;
    for (let attempt = 1; ; attempt++) {
      const headers: Record<string, string> = { "Content-Type": "application/json" };
      if (hook.secretToken) headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secretToken;
      const res = await postTo(
        hook.url,
        JSON.stringify(update),
        headers,
        this.#env.webhookTimeoutMs,
      );
      const ok = res.status >= 200 && res.status < 300;
      let error: string | undefined;
      if (!ok) {
        error =
          res.status > 0
            ? `Wrong response from the webhook: ${res.status} ${STATUS_CODES[res.status] ?? ""}`.trim()
            : res.timedOut
              ? "Read timeout expired"
              : /ECONNREFUSED/.test(res.error ?? "")
                ? "Connection refused"
                : `Connection error: ${res.error ?? "unknown"}`;
        hook.lastErrorDate = now();
        hook.lastErrorMessage = error;
      }
      this.webhookDeliveries.push({
        updateId: update.update_id,
        attempt,
        url: hook.url,
        status: res.status,
        at: Date.now(),
        ...(error ? { error } : {}),
        ...(hook.secretToken ? { secretToken: hook.secretToken } : {}),
      });
      this.#env.signal.notify();
      if (ok) {
        await this.#webhookReply(res.headers["content-type"], res.body);
        return true;
      }
      const delay = delays[attempt - 1];
      if (delay === undefined) return true; // gave up: the update is dropped
      await this.#sleepFor(delay);
      if (this.webhook !== hook || this.#closed) return false;
    }
  }

  async #webhookReply(contentType: string | undefined, body: string): Promise<void> {
    if (!contentType?.includes("application/json") || !body) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return;
    }
    if (typeof parsed !== "object" || parsed === null) return;
    const { method, ...params } = parsed as Record<string, unknown>;
    if (typeof method === "string") await this.#env.webhookReply(this, method, params);
  }

  #sleepFor(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleep = undefined;
        resolve();
      }, ms);
      this.#sleep = { timer, resolve };
    });
  }

  #cancelSleep(): void {
    if (!this.#sleep) return;
    clearTimeout(this.#sleep.timer);
    this.#sleep.resolve();
    this.#sleep = undefined;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Forgets activity; keeps the webhook, commands, menu buttons and chat settings. */
  resetActivity(): void {
    this.updates = [];
    for (const [chatId, state] of this.chats) {
      state.nextMessageId = 1;
      state.topics.clear();
      this.messagesByChat.set(chatId, []);
    }
    this.files.clear();
    this.callbackQueries.clear();
    this.chatActions.length = 0;
    this.callbackAnswers.length = 0;
    this.webhookDeliveries.length = 0;
  }

  close(): void {
    this.#closed = true;
    this.#poller?.wake();
    this.#cancelSleep();
  }
}

export function now(): number {
  return Math.floor(Date.now() / 1000);
}
