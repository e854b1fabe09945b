/**
 * A Telegram Bot API emulator: /bot<token>/<method> with the Bot API's
 * envelopes and status codes, long polling and webhook delivery, file
 * downloads at /file/bot<token>/<path>, and helpers to act as users.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { decodeJsonFields, parseBody, type UploadedFile } from "../platform-kit/body.ts";
import {
  dropConnection,
  type HttpServer,
  listen,
  readRaw,
  sendJson,
} from "../platform-kit/http.ts";
import { FailureQueue, RateLimiter, type RateLimitRule } from "../platform-kit/rate-limit.ts";
import { ChangeSignal, type WaitOptions } from "../platform-kit/signal.ts";
import { type BotEnv, TelegramBotSim, type TelegramMessagesQuery } from "./bot.ts";
import { chatOf, Described, FLOOD_LIMITED, METHOD_INDEX, TgParams } from "./bot-api.ts";
import { NOT_FOUND, TgError, UNAUTHORIZED } from "./errors.ts";
import type {
  TelegramBotOptions,
  TelegramCall,
  TelegramEmulatorOptions,
  TelegramFailure,
  TelegramMessage,
  TgBotCommand,
  TgCallbackAnswer,
  TgChatAction,
  TgClickInput,
  TgUpdate,
  TgUserInput,
  TgUserSendsInput,
  TgUserSendsResult,
  TgWebhookConfig,
  TgWebhookDelivery,
} from "./types.ts";
import { signWebAppInitData, type WebAppInitDataInput } from "./webapp.ts";

const DEFAULT_LIMITS: Required<{
  privateChat: RateLimitRule;
  groupChat: RateLimitRule;
  global: RateLimitRule;
}> = {
  privateChat: { limit: 10, windowMs: 10_000 },
  groupChat: { limit: 20, windowMs: 60_000 },
  global: { limit: 30, windowMs: 1_000 },
};

export async function startTelegramEmulator(
  options: TelegramEmulatorOptions,
): Promise<TelegramEmulator> {
  const emu = new TelegramEmulator(options);
  await emu.listen(options.port ?? 0);
  return emu;
}

export class TelegramEmulator {
  /** Every Bot API call (all bots), in arrival order. */
  readonly calls: TelegramCall[] = [];

  readonly #options: TelegramEmulatorOptions;
  readonly #signal = new ChangeSignal();
  readonly #limiter = new RateLimiter();
  readonly #failures = new FailureQueue<TelegramFailure>();
  readonly #bots = new Map<string, TelegramBotSim>();
  readonly #env: BotEnv;
  readonly #primary: TelegramBotSim;
  #server?: HttpServer;

  constructor(options: TelegramEmulatorOptions) {
    this.#options = options;
    this.#env = {
      signal: this.#signal,
      webhookRetryDelaysMs: options.webhookRetryDelaysMs ?? [100, 500, 1_000, 2_000, 5_000],
      webhookTimeoutMs: options.webhookTimeoutMs ?? 10_000,
      webhookReply: async (bot, method, params) => {
        await this.#invoke(bot, method, params, [], new AbortController().signal, "webhook_reply");
      },
    };
    this.#primary = this.addBot(options);
  }

  /** @internal Started by startTelegramEmulator. */
  async listen(port: number): Promise<void> {
    this.#server = await listen((req, res) => this.#route(req, res), port);
  }

  /** Base URL; pass it as grammY's `client.apiRoot`. */
  get url(): string {
    if (!this.#server) throw new Error("Telegram emulator is not listening");
    return this.#server.url;
  }

  get apiRoot(): string {
    return this.url;
  }

  /** Another bot served by the same emulator (its own chats, updates and webhook). */
  addBot(options: TelegramBotOptions): TelegramBotSim {
    const bot = new TelegramBotSim(options, this.#env);
    this.#bots.set(bot.token, bot);
    return bot;
  }

  /** A bot by token (default: the one from the options). */
  bot(token?: string): TelegramBotSim {
    if (token === undefined) return this.#primary;
    const bot = this.#bots.get(token);
    if (!bot) throw new Error(`No emulated bot with token ${token}`);
    return bot;
  }

  get botToken(): string {
    return this.#primary.token;
  }

  get botId(): number {
    return this.#primary.id;
  }

  get botUsername(): string {
    return this.#primary.username;
  }

  // ---------------------------------------------------------------- model (primary bot)

  messages(chatId: number, query: TelegramMessagesQuery = {}): TelegramMessage[] {
    return this.#primary.messages(chatId, query);
  }

  message(chatId: number, messageId: number): TelegramMessage | undefined {
    return this.#primary.findMessage(chatId, messageId);
  }

  get chatActions(): readonly TgChatAction[] {
    return this.#primary.chatActions;
  }

  get callbackAnswers(): readonly TgCallbackAnswer[] {
    return this.#primary.callbackAnswers;
  }

  get webhookDeliveries(): readonly TgWebhookDelivery[] {
    return this.#primary.webhookDeliveries;
  }

  get webhook(): TgWebhookConfig | undefined {
    return this.#primary.webhook;
  }

  /** Whether the primary bot has a getUpdates long poll waiting (await it before sending). */
  get polling(): boolean {
    return this.#primary.polling;
  }

  /** Updates not yet confirmed by getUpdates or accepted by the webhook. */
  get pendingUpdates(): readonly TgUpdate[] {
    return this.#primary.updates;
  }

  /** Commands set for a scope (default scope, no language, unless given). */
  commands(
    scope: Record<string, unknown> = { type: "default" },
    languageCode = "",
  ): TgBotCommand[] {
    return this.#primary.commands.get(`${JSON.stringify(scope)}|${languageCode}`) ?? [];
  }

  /** The menu button for a private chat, or the default one. */
  menuButton(chatId?: number): Record<string, unknown> | undefined {
    return this.#primary.menuButtons.get(chatId === undefined ? "default" : String(chatId));
  }

  // ---------------------------------------------------------------- acting as users

  /** A user sends a message to the bot; returns the Update (and whether the bot gets it). */
  userSends(input: TgUserSendsInput): TgUserSendsResult {
    return this.#primary.userSends(input);
  }

  /** A user presses an inline keyboard button; the data must be on the message. */
  clickCallback(input: TgClickInput): {
    update: TgUpdate;
    callbackQueryId: string;
    delivered: boolean;
  } {
    return this.#primary.clickCallback(input);
  }

  /** A user opens a forum topic in a forum supergroup; returns message_thread_id. */
  createForumTopic(input: {
    chatId: number;
    name: string;
    from: TgUserInput;
    iconColor?: number;
  }): number {
    const state = this.#primary.chats.get(input.chatId);
    if (!state?.chat.is_forum)
      throw new Error(`createForumTopic: chat ${input.chatId} is not a known forum`);
    const id = this.#primary.createTopic(
      input.chatId,
      input.name,
      input.iconColor ?? 7322096,
      { is_bot: false, ...input.from },
      false,
    );
    this.#signal.notify();
    return id;
  }

  /** Mini App initData signed with the bot's token (or forged, see the input's options). */
  webAppInitData(input: WebAppInitDataInput): string {
    return signWebAppInitData(this.#primary.token, input);
  }

  /** The user blocks (or unblocks) the bot: sends to their private chat fail with 403. */
  blockBot(userId: number, blocked = true): void {
    const state = this.#primary.chats.get(userId);
    if (!state) throw new Error(`blockBot: no private chat with ${userId}`);
    state.blocked = blocked;
  }

  /** Makes the bot a group admin (sees all messages, may delete others' messages). */
  setBotAdmin(chatId: number, admin = true): void {
    const state = this.#primary.chats.get(chatId);
    if (!state) throw new Error(`setBotAdmin: unknown chat ${chatId}`);
    state.botIsAdmin = admin;
  }

  /** The group's administrators (getChatAdministrators); the first one is its creator. */
  setChatAdmins(chatId: number, admins: TgUserInput[]): void {
    const state = this.#primary.chats.get(chatId);
    if (!state) throw new Error(`setChatAdmins: unknown chat ${chatId}`);
    state.admins = [...admins];
  }

  // ---------------------------------------------------------------- knobs

  /**
   * Messages longer than `chars` characters are refused with "Bad Request:
   * message is too long", as Telegram refuses those over 4096.
   */
  limitMessageLength(chars: number, token?: string): void {
    this.bot(token).messageLimit = chars;
  }

  /** The next `times` calls to `method` fail: a description (400) or a shaped failure. */
  failNext(method: string, failure: string | TelegramFailure, times = 1): void {
    const shaped: TelegramFailure =
      typeof failure === "string"
        ? {
            error_code: 400,
            description: failure.startsWith("Bad Request:") ? failure : `Bad Request: ${failure}`,
          }
        : failure;
    this.#failures.push(method.toLowerCase(), shaped, times);
  }

  /** The next `times` calls to `method` answer 429 "Too Many Requests: retry after N". */
  forceRateLimit(method: string, opts: { retryAfter?: number; times?: number } = {}): void {
    const retryAfter = opts.retryAfter ?? 1;
    this.failNext(
      method,
      {
        error_code: 429,
        description: `Too Many Requests: retry after ${retryAfter}`,
        parameters: { retry_after: retryAfter },
      },
      opts.times ?? 1,
    );
  }

  // ---------------------------------------------------------------- waiting

  waitFor<T>(predicate: () => T | undefined | null | false, opts?: WaitOptions): Promise<T> {
    return this.#signal.waitFor(predicate, opts);
  }

  waitForCall(
    method: string,
    match: (call: TelegramCall) => boolean = () => true,
    opts: WaitOptions & { since?: number } = {},
  ): Promise<TelegramCall> {
    const since = opts.since ?? 0;
    return this.waitFor(
      () =>
        this.calls
          .slice(since)
          .find((c) => c.method.toLowerCase() === method.toLowerCase() && match(c)),
      { description: `a ${method} call`, ...opts },
    );
  }

  /**
   * Forgets activity (calls, messages, updates, files, counters, failures);
   * keeps bots, chats, webhooks, commands and menu buttons.
   */
  reset(): void {
    this.calls.length = 0;
    for (const bot of this.#bots.values()) bot.resetActivity();
    this.#limiter.reset();
    this.#failures.reset();
    this.#signal.notify();
  }

  async close(): Promise<void> {
    for (const bot of this.#bots.values()) bot.close();
    await this.#server?.close();
  }

  // ---------------------------------------------------------------- HTTP

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const api = /^\/bot([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (api) return this.#handleApi(req, res, url, decodeURIComponent(api[1] ?? ""), api[2] ?? "");
    const file = /^\/file\/bot([^/]+)\/(.+)$/.exec(url.pathname);
    if (file && req.method === "GET") {
      const bot = this.#bots.get(decodeURIComponent(file[1] ?? ""));
      const path = decodeURIComponent(file[2] ?? "");
      const found = bot ? [...bot.files.values()].find((f) => f.filePath === path) : undefined;
      if (!bot) return sendJson(res, 401, UNAUTHORIZED.body());
      if (!found) return sendJson(res, 404, NOT_FOUND.body());
      res.writeHead(200, {
        "content-type": found.mimeType ?? "application/octet-stream",
        "content-length": found.data.length,
      });
      res.end(found.data);
      return;
    }
    await readRaw(req);
    sendJson(res, 404, NOT_FOUND.body());
  }

  async #handleApi(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    token: string,
    method: string,
  ): Promise<void> {
    const raw = await readRaw(req);
    const bot = this.#bots.get(token);
    if (!bot) return sendJson(res, 401, UNAUTHORIZED.body());
    const body = parseBody(raw, req.headers["content-type"]);
    const params: Record<string, unknown> = Object.fromEntries(url.searchParams);
    if (
      body.kind === "json" &&
      !body.error &&
      typeof body.json === "object" &&
      body.json !== null
    ) {
      Object.assign(params, body.json);
    } else if (body.kind === "form" || body.kind === "multipart") {
      Object.assign(params, body.fields);
    }
    if (body.error) {
      return sendJson(res, 400, TgError.badRequest("can't parse request body").body());
    }
    const failure = this.#failures.take(method.toLowerCase());
    if (failure?.network) {
      this.#record(bot, method, params, body.files, 0, {}, "http");
      dropConnection(res);
      return;
    }
    const controller = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) controller.abort();
    });
    const { status, response } = failure
      ? this.#failureResponse(bot, method, params, body.files, failure)
      : await this.#invoke(bot, method, params, body.files, controller.signal, "http");
    sendJson(res, status, response);
  }

  #failureResponse(
    bot: TelegramBotSim,
    method: string,
    params: Record<string, unknown>,
    files: UploadedFile[],
    failure: TelegramFailure,
  ): { status: number; response: Record<string, unknown> } {
    const error = new TgError(
      failure.error_code ?? 400,
      failure.description ?? "Bad Request: injected failure",
      failure.parameters,
    );
    const response = error.body();
    this.#record(bot, method, params, files, error.errorCode, response, "http");
    return { status: error.errorCode, response };
  }

  async #invoke(
    bot: TelegramBotSim,
    method: string,
    rawParams: Record<string, unknown>,
    files: UploadedFile[],
    signal: AbortSignal,
    via: TelegramCall["via"],
  ): Promise<{ status: number; response: Record<string, unknown> }> {
    const entry = METHOD_INDEX.get(method.toLowerCase());
    let status = 200;
    let response: Record<string, unknown>;
    try {
      if (!entry) throw NOT_FOUND;
      const params = new TgParams(rawParams, files);
      const flood = this.#floodKeys(bot, entry.name, params);
      for (const [key, rule] of flood) {
        const decision = this.#limiter.check(key, rule);
        if (decision.limited) throw TgError.tooManyRequests(decision.retryAfterSec);
      }
      const result = await entry.handler(bot, {
        params,
        signal,
        httpsOnly: this.#options.httpsOnly ?? false,
      });
      // Only messages that went out count against flood control.
      for (const [key, rule] of flood) this.#limiter.hit(key, rule);
      response =
        result instanceof Described
          ? { ok: true, result: result.result, description: result.description }
          : { ok: true, result };
    } catch (err) {
      if (!(err instanceof TgError)) throw err;
      status = err.errorCode;
      response = err.body();
    }
    this.#record(bot, entry?.name ?? method, rawParams, files, status, response, via);
    return { status, response };
  }

  /** Telegram's flood control: per-chat and global counters for sends and edits. */
  #floodKeys(bot: TelegramBotSim, method: string, params: TgParams): [string, RateLimitRule][] {
    const limits = this.#options.rateLimits;
    if (limits === false || !FLOOD_LIMITED.has(method.toLowerCase())) return [];
    let state: ReturnType<typeof chatOf>;
    try {
      state = chatOf(bot, params);
    } catch {
      return []; // the handler reports the bad chat
    }
    const perChat =
      state.chat.type === "private"
        ? (limits?.privateChat ?? DEFAULT_LIMITS.privateChat)
        : (limits?.groupChat ?? DEFAULT_LIMITS.groupChat);
    return [
      [`${bot.id}:chat:${state.chat.id}`, perChat],
      [`${bot.id}:global`, limits?.global ?? DEFAULT_LIMITS.global],
    ];
  }

  #record(
    bot: TelegramBotSim,
    method: string,
    params: Record<string, unknown>,
    files: UploadedFile[],
    httpStatus: number,
    response: Record<string, unknown>,
    via: TelegramCall["via"],
  ): void {
    this.calls.push({
      method,
      token: bot.token,
      params: decodeJsonFields(params),
      files: files.map((f) => ({ field: f.field, filename: f.filename, size: f.data.length })),
      httpStatus,
      response,
      via,
      at: Date.now(),
    });
    this.#signal.notify();
  }
}
