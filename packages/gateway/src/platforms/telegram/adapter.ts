import { type AgentEvent, errorBody, isLobuError, randomToken } from "@lobu/core";
import { Bot, type Context, GrammyError, type NextFunction } from "grammy";
import type { Update } from "grammy/types";
import type { Logger } from "pino";
import { type Origin, userKeyOf } from "../../domain/origin.ts";
import { safeEqual } from "../../util/safe-equal.ts";
import {
  type AdapterContext,
  type PlatformAdapter,
  REDELIVERY_MEMORY_MS,
} from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { messageText, refusalText } from "../shared/inbound.ts";
import { type CapabilityRequest, withoutPublicLinks } from "../shared/private-links.ts";
import { outcomeMarkdown } from "../shared/requests.ts";
import type { PlatformRoutes } from "../shared/routes.ts";
import { TurnViews } from "../shared/turn-view.ts";
import type { TelegramSettings } from "./config.ts";
import { toTelegramHtml } from "./html.ts";
import { classifyMessage, displayNameOf, filesOfMessage, type TgMessage } from "./inbound.ts";
import { verifyInitData } from "./init-data.ts";
import { parseCallbackData, settingsKeyboard } from "./keyboard.ts";
import { TelegramSurface, type TgCard, type TgLive, tgCall } from "./surface.ts";

const ALLOWED_UPDATES = ["message", "callback_query"] as const;
const SUBMIT_ATTEMPTS = 4;
/** How long to wait for the gateway's own URL before giving up on setWebhook. */
const PUBLIC_URL_WAIT_MS = 60_000;
/** initData is a few KB at most (the settings login caps it at 8 KiB). */
const VERIFY_MAX_BODY_BYTES = 16 * 1024;

/**
 * Telegram: webhook or long polling (grammY), private chats, groups and forum
 * topics, replies streamed by editing, inline keyboards for requests, and the
 * settings page as a Mini App.
 */
export class TelegramAdapter implements PlatformAdapter {
  readonly platform = "telegram";
  readonly #settings: TelegramSettings;
  readonly #views = new TurnViews<TgLive, TgCard>();
  readonly #bot: Bot;
  #ctx!: AdapterContext;
  #log!: Logger;
  #background!: Background;
  #polling: Promise<void> | undefined;
  #stopped = false;

  constructor(settings: TelegramSettings) {
    this.#settings = settings;
    this.#bot = new Bot(
      settings.token,
      settings.apiRoot ? { client: { apiRoot: settings.apiRoot } } : {},
    );
  }

  async start(ctx: AdapterContext): Promise<void> {
    this.#ctx = ctx;
    this.#log = ctx.log;
    this.#background = new Background(ctx.log);
    try {
      await this.#bot.init();
    } catch (err) {
      if (err instanceof GrammyError) {
        throw new Error(
          `Telegram rejected TELEGRAM_BOT_TOKEN (${err.description}); copy the token @BotFather gave you`,
        );
      }
      const root = this.#settings.apiRoot ?? "https://api.telegram.org";
      throw new Error(
        `could not reach the Telegram Bot API at ${root} (${(err as Error).message}); check the network${this.#settings.apiRoot ? " and TELEGRAM_API_ROOT" : ""}`,
      );
    }
    // First: an update is handled once, however often it arrives.
    this.#bot.use((c, next) => this.#firstDelivery(c, next));
    this.#bot.on("message", (c) => this.#onMessage(c));
    this.#bot.on("callback_query:data", (c) => this.#onCallback(c));
    this.#bot.catch((err) =>
      this.#log.error(
        { err: err.error, updateId: err.ctx.update.update_id },
        "could not handle a Telegram update",
      ),
    );
    this.#webAppRoutes(ctx.routes);
    this.#background.run(
      () =>
        this.#bot.api.setMyCommands([
          { command: "settings", description: "Your personal settings (API keys, accounts)" },
          { command: "help", description: "How to talk to the agent" },
        ]),
      "could not set the bot's commands",
    );
    if (this.#settings.mode === "webhook") await this.#startWebhook(ctx.routes);
    else this.#startPolling();
    this.#log.info(
      { bot: this.#bot.botInfo.username, mode: this.#settings.mode },
      "Telegram bot connected",
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#polling) {
      await this.#bot.stop().catch(() => {});
      await this.#polling.catch(() => {});
    }
    await this.#background?.settle();
    this.#views.clear();
  }

  async deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  ): Promise<void> {
    const interval = origin.isDirect
      ? this.#settings.streamIntervalMs
      : this.#settings.groupStreamIntervalMs;
    // In a group the card is public: its settings link goes to the person's private chat instead.
    const events = origin.isDirect
      ? turn.events
      : withoutPublicLinks(turn.events, (request) =>
          this.#background.run(
            () => this.#sendRequestLink(origin, request),
            "could not send the settings link for a request",
          ),
        );
    await this.#views.show(
      { messageId: turn.messageId, events },
      { platform: this.platform, intervalMs: interval, log: this.#log },
      () =>
        new TelegramSurface(this.#bot.api, origin, {
          state: this.#ctx.state,
          settingsUrl: async () =>
            origin.isDirect ? this.#ctx.settingsLink(origin).catch(() => undefined) : undefined,
          log: this.#log,
        }),
    );
  }

  async notify(origin: Origin, text: string): Promise<void> {
    for (const html of toTelegramHtml(text)) {
      await tgCall(() =>
        this.#bot.api.sendMessage(Number(origin.channelId), html, {
          parse_mode: "HTML",
          ...(origin.threadId ? { message_thread_id: Number(origin.threadId) } : {}),
        }),
      );
    }
  }

  // ---------------------------------------------------------------- transport

  async #startWebhook(routes: PlatformRoutes): Promise<void> {
    const secret = await this.#webhookSecret();
    // The secret token is checked before the body (bounded by the platform limit) is read.
    routes.post("/telegram/webhook", async (c) => {
      if (!safeEqual(c.req.header("x-telegram-bot-api-secret-token") ?? "", secret)) {
        this.#log.warn("refused a Telegram webhook call without the right secret token");
        return c.json(
          errorBody("bad_secret", "X-Telegram-Bot-Api-Secret-Token does not match"),
          401,
        );
      }
      let update: Update;
      try {
        update = (await c.req.json()) as Update;
      } catch {
        return c.json(errorBody("malformed_json", "body is not JSON"), 400);
      }
      if (typeof update?.update_id !== "number")
        return c.json(errorBody("bad_request", "not an Update"), 400);
      try {
        await this.#bot.handleUpdate(update);
      } catch (err) {
        // Telegram redelivers on a non-2xx answer; #firstDelivery lets that redelivery through.
        this.#log.error({ err, updateId: update.update_id }, "could not handle a Telegram update");
        return c.json(errorBody("internal", "could not handle the update"), 500);
      }
      return c.body(null, 200);
    });
    this.#background.run(async () => {
      // Set it once the gateway listens, so Telegram's first delivery finds the route.
      const publicUrl = await this.#publicUrl();
      const url = this.#settings.webhookUrl ?? `${publicUrl}/telegram/webhook`;
      await this.#bot.api.setWebhook(url, {
        secret_token: secret,
        allowed_updates: [...ALLOWED_UPDATES],
      });
      this.#log.info({ url }, "Telegram webhook set");
    }, "could not set the Telegram webhook (is the public URL reachable over HTTPS?)");
  }

  /** TELEGRAM_WEBHOOK_SECRET, or one generated once and kept in the secret store. */
  async #webhookSecret(): Promise<string> {
    if (this.#settings.webhookSecret) return this.#settings.webhookSecret;
    const stored = await this.#ctx.secrets.get("webhook_secret");
    if (stored) return stored;
    const secret = randomToken(32);
    await this.#ctx.secrets.set("webhook_secret", secret);
    return secret;
  }

  /** The gateway's URL is known only once it listens (adapters start before that). */
  async #publicUrl(): Promise<string> {
    const deadline = Date.now() + PUBLIC_URL_WAIT_MS;
    while (!this.#ctx.publicUrl) {
      if (this.#stopped || Date.now() > deadline)
        throw new Error("the gateway's public URL never became known");
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.#ctx.publicUrl;
  }

  #startPolling(): void {
    this.#polling = this.#bot
      .start({ allowed_updates: [...ALLOWED_UPDATES], drop_pending_updates: false })
      .catch((err) => {
        if (!this.#stopped) this.#log.error({ err }, "Telegram long polling stopped");
      });
  }

  #webAppRoutes(routes: PlatformRoutes): void {
    // Who opened a Mini App, checked statelessly: it opens no session and hands
    // out nothing, so the same initData may be checked again. The settings page
    // signs in through /settings/api/session/telegram instead (single-use).
    routes.post(
      "/telegram/webapp/verify",
      async (c) => {
        let initData = /^tma\s+(.+)$/i.exec(c.req.header("authorization") ?? "")?.[1];
        if (!initData) {
          const type = c.req.header("content-type") ?? "";
          try {
            if (type.includes("application/json")) {
              const body = (await c.req.json()) as { initData?: unknown } | null;
              initData = typeof body?.initData === "string" ? body.initData : undefined;
            } else if (type.includes("form"))
              initData = String((await c.req.parseBody()).initData ?? "");
            else initData = await c.req.text();
          } catch {
            initData = undefined;
          }
        }
        if (!initData) {
          return c.json(
            errorBody(
              "invalid_init_data",
              'no initData: send {"initData": "<Telegram.WebApp.initData>"} or the header Authorization: tma <initData>',
            ),
            401,
          );
        }
        const result = verifyInitData(initData, this.#settings.token, {
          maxAgeSec: this.#settings.initDataMaxAgeSec,
        });
        if (!result.ok) return c.json(errorBody("invalid_init_data", result.reason), 401);
        const userKey = userKeyOf({ platform: this.platform, userId: String(result.user.id) });
        const { ok: _ok, ...verified } = result;
        return c.json({ ok: true, userKey, ...verified });
      },
      { maxBodyBytes: VERIFY_MAX_BODY_BYTES },
    );
  }

  /**
   * Handle each update once: a webhook Telegram redelivered, a captured call
   * sent again with the secret token, or updates polled again after a restart
   * carry an update_id already seen. Handling that fails forgets the update,
   * so Telegram's redelivery of it is taken.
   */
  async #firstDelivery(c: Context, next: NextFunction): Promise<void> {
    const key = `update:${this.#bot.botInfo.id}:${c.update.update_id}`;
    if (!(await this.#ctx.once.claim(key, REDELIVERY_MEMORY_MS))) {
      this.#log.debug({ updateId: c.update.update_id }, "Telegram update already handled");
      return;
    }
    try {
      await next();
    } catch (err) {
      await this.#ctx.once.release(key).catch(() => {});
      throw err;
    }
  }

  // ---------------------------------------------------------------- updates

  async #onMessage(c: Context): Promise<void> {
    const msg = c.message as TgMessage | undefined;
    if (!msg?.from) return;
    const me = this.#bot.botInfo;
    const m = classifyMessage(msg, { id: me.id, username: me.username });
    if (m.kind === "ignore") {
      this.#log.debug({ reason: m.reason }, "ignoring Telegram message");
      return;
    }
    const origin: Origin = {
      platform: this.platform,
      channelId: String(msg.chat.id),
      userId: String(msg.from.id),
      userName: displayNameOf(msg.from),
      isDirect: m.isPrivate,
      messageRef: String(msg.message_id),
      ...(m.threadId !== undefined ? { threadId: String(m.threadId) } : {}),
    };
    const command = m.command?.name;
    if (command === "settings" || (command === "start" && m.command?.args === "settings")) {
      await this.#sendSettings(origin);
      return;
    }
    if (command === "start" || command === "help") {
      await this.notify(
        origin,
        m.isPrivate
          ? "Hi! Send me a message and the agent answers here. /settings opens your personal settings."
          : `Mention me (@${me.username}) or reply to one of my messages to talk to the agent. /settings opens your personal settings.`,
      );
      return;
    }
    const files = filesOfMessage(msg);
    if (!m.text && files.length === 0) return;
    try {
      await this.#submit({
        origin,
        text: messageText(m.text, files),
        ...(files.length ? { files } : {}),
        // A redelivered update (webhook retry, polling after a restart) has the same update_id.
        eventId: `${me.id}:${c.update.update_id}`,
        ...(this.#settings.agentId ? { agentId: this.#settings.agentId } : {}),
      });
    } catch (err) {
      if (isLobuError(err) && err.status < 500) {
        await this.notify(origin, refusalText(err)).catch((e) =>
          this.#log.warn({ err: e }, "could not report a refused message"),
        );
        return;
      }
      throw err;
    }
  }

  /**
   * Store the message, riding out a short store outage: with long polling the
   * update counts as received once this handler returns, so giving up loses it.
   */
  async #submit(message: Parameters<AdapterContext["submit"]>[0]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#ctx.submit(message);
        return;
      } catch (err) {
        if ((isLobuError(err) && err.status < 500) || attempt >= SUBMIT_ATTEMPTS || this.#stopped)
          throw err;
        this.#log.warn({ err, attempt }, "could not store a Telegram message; trying again");
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
      }
    }
  }

  async #sendSettings(origin: Origin): Promise<void> {
    const url = origin.isDirect ? await this.#ctx.settingsLink(origin) : undefined;
    await tgCall(() =>
      this.#bot.api.sendMessage(
        Number(origin.channelId),
        origin.isDirect
          ? "Your personal settings for this agent (API keys, connected accounts, approvals):"
          : "Your settings are personal: open them in a private chat with me.",
        {
          reply_markup: settingsKeyboard({
            isPrivate: origin.isDirect,
            botUsername: this.#bot.botInfo.username,
            ...(url ? { url } : {}),
          }),
          ...(origin.threadId ? { message_thread_id: Number(origin.threadId) } : {}),
        },
      ),
    );
  }

  /**
   * A capability request's link, to the person alone: in their private chat
   * with the bot, or (when they never opened one) a button into it.
   */
  async #sendRequestLink(origin: Origin, request: CapabilityRequest): Promise<void> {
    const botUsername = this.#bot.botInfo.username;
    const url = request.url ?? (await this.#ctx.settingsLink(origin));
    try {
      await tgCall(() =>
        this.#bot.api.sendMessage(
          Number(origin.userId),
          `The agent asks for ${request.value}. Answer in your settings:`,
          { reply_markup: settingsKeyboard({ isPrivate: true, botUsername, url }) },
        ),
      );
    } catch (err) {
      this.#log.debug({ err }, "could not message the person privately; pointing them to the bot");
      await tgCall(() =>
        this.#bot.api.sendMessage(
          Number(origin.channelId),
          "Your settings are personal: open them in a private chat with me.",
          {
            reply_markup: settingsKeyboard({ isPrivate: false, botUsername }),
            ...(origin.threadId ? { message_thread_id: Number(origin.threadId) } : {}),
          },
        ),
      );
    }
  }

  async #onCallback(c: Context): Promise<void> {
    const query = c.callbackQuery;
    if (!query?.data) return;
    let answered = false;
    const answerQuery = async (text?: string, alert = false) => {
      if (answered) return;
      answered = true;
      await c
        .answerCallbackQuery(text ? { text: text.slice(0, 200), show_alert: alert } : {})
        .catch((err) => this.#log.debug({ err }, "answerCallbackQuery failed"));
    };
    try {
      const parsed = await parseCallbackData(query.data, this.#ctx.state, this.#log);
      if (!parsed) {
        await answerQuery("This button is no longer active.", true);
        return;
      }
      const userName = displayNameOf(query.from);
      const result = await this.#ctx.answer(
        parsed.requestId,
        { choice: parsed.choice },
        { platform: this.platform, userId: String(query.from.id), userName },
      );
      if (!result.ok) {
        await answerQuery(`⚠️ ${result.reason ?? "this request cannot be answered"}`, true);
        return;
      }
      const message = query.message;
      const label =
        message && "reply_markup" in message
          ? message.reply_markup?.inline_keyboard
              .flat()
              .find((b) => "callback_data" in b && b.callback_data === query.data)?.text
          : undefined;
      await answerQuery(`${label ?? parsed.choice} ✓`);
      // A live view on this gateway closes its own card on request_resolved; otherwise close it here.
      if (
        this.#views.hasOpenCard(parsed.requestId) ||
        !message ||
        !("text" in message) ||
        !message.text
      )
        return;
      const line = outcomeMarkdown(label ?? parsed.choice, parsed.choice, userName).replace(
        /\*\*/g,
        "",
      );
      await tgCall(() =>
        this.#bot.api.editMessageText(
          message.chat.id,
          message.message_id,
          `${message.text}\n\n${line}`,
          {
            ...(message.entities ? { entities: message.entities } : {}),
          },
        ),
      ).catch((err) => this.#log.warn({ err }, "could not update the answered card"));
    } finally {
      await answerQuery();
    }
  }
}
