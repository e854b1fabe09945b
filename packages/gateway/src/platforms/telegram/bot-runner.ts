import type { AgentEvent } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import { Bot, GrammyError } from "grammy";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import { type AdapterContext, REDELIVERY_MEMORY_MS } from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { deliverTurn } from "../shared/deliver.ts";
import { handleOnce } from "../shared/once.ts";
import { TurnViews } from "../shared/turn-view.ts";
import { TelegramChatLog } from "./chat-log.ts";
import { sendText } from "./client.ts";
import { TelegramCommands } from "./commands.ts";
import type { TelegramBotSettings, TelegramSettings } from "./config.ts";
import { TelegramDirectory } from "./directory.ts";
import { TelegramFiles } from "./files.ts";
import { handleCallbackQuery } from "./interactivity.ts";
import { handleMessage } from "./messages.ts";
import { TelegramSurface, type TgCard, type TgLive } from "./surface.ts";
import { webAppRoutes } from "./webapp.ts";
import {
  startPolling,
  startWebhook,
  TELEGRAM_POLLING_ACK,
  TELEGRAM_WEBHOOK_ACK,
} from "./webhook/receiver.ts";

/** Where a bot's routes live: /telegram/… for the TELEGRAM_BOT_TOKEN bot, /telegram/<id>/… for a named one. */
export function botPath(botId: string, path: string): string {
  return botId ? `/telegram/${botId}${path}` : `/telegram${path}`;
}

/**
 * One Telegram bot of the gateway: its grammY Bot, webhook (or polling),
 * commands, chat log and replies. Every origin it makes carries its id as
 * the `workspace` (none for the TELEGRAM_BOT_TOKEN bot), so replies, edits,
 * buttons, files and later deliveries go back out through this bot, and two
 * bots in one group are two conversations.
 */
export class TelegramBotRunner {
  /** Attachments in, files out, with this bot's token (a file_id belongs to one bot). */
  readonly files: TelegramFiles;
  readonly #bot: TelegramBotSettings;
  readonly #settings: TelegramSettings;
  readonly #views = new TurnViews<TgLive, TgCard>();
  readonly #grammy: Bot;
  readonly #stopped = new AbortController();
  #ctx!: AdapterContext;
  #log!: Logger;
  #background!: Background;
  #commands!: TelegramCommands;
  #polling: Promise<void> | undefined;
  #chatLog: TelegramChatLog | undefined;

  constructor(bot: TelegramBotSettings, settings: TelegramSettings) {
    this.#bot = bot;
    this.#settings = settings;
    this.#grammy = new Bot(
      bot.token,
      settings.apiRoot ? { client: { apiRoot: settings.apiRoot } } : {},
    );
    this.files = new TelegramFiles({
      api: this.#grammy.api,
      token: bot.token,
      apiRoot: settings.apiRoot,
    });
  }

  get id(): string {
    return this.#bot.id;
  }

  async start(platformCtx: AdapterContext): Promise<void> {
    const { mode } = this.#settings;
    const botId = this.#bot.id;
    const ctx = botId ? botScoped(platformCtx, botId) : platformCtx;
    const bot = this.#grammy;
    this.#ctx = ctx;
    const log = ctx.log;
    this.#log = log;
    const background = new Background(log);
    this.#background = background;
    await this.#init();
    const me = { id: bot.botInfo.id, username: bot.botInfo.username };
    const commands = new TelegramCommands({ api: bot.api, botUsername: me.username, ctx, log });
    this.#commands = commands;
    const chatLog = new TelegramChatLog({
      logs: ctx.logs,
      settings: this.#settings.history,
      bot: me,
      log,
    });
    this.#chatLog = chatLog;
    const stopped = this.#stopped.signal;
    const inbound = {
      ctx,
      policy: mode === "webhook" ? TELEGRAM_WEBHOOK_ACK : TELEGRAM_POLLING_ACK,
      log,
      background,
      notify: (origin: Origin, text: string) => this.notify(origin, text),
      stopped,
    };
    // First: an update is handled once, however often it arrives (webhook retries, polling after a restart).
    bot.use((c, next) =>
      handleOnce(
        {
          once: ctx.once,
          log,
          marker: { key: `update:${me.id}:${c.update.update_id}`, ttlMs: REDELIVERY_MEMORY_MS },
        },
        () => next(),
        () => log.debug({ updateId: c.update.update_id }, "Telegram update already handled"),
      ),
    );
    const directory = new TelegramDirectory(bot.api);
    const settings = { agentId: this.#bot.agentId };
    bot.on("message", (c) =>
      handleMessage(
        { me, botId, settings, commands, directory, binder: ctx, inbound, chatLog, log },
        c,
      ),
    );
    bot.on("callback_query:data", (c) =>
      handleCallbackQuery({ api: bot.api, botId, ctx, views: this.#views, log }, c),
    );
    bot.catch((err) =>
      log.error(
        { err: err.error, updateId: err.ctx.update.update_id },
        "could not handle a Telegram update",
      ),
    );
    webAppRoutes(ctx.routes, {
      path: botPath(botId, "/webapp/verify"),
      botId,
      token: this.#bot.token,
      initDataMaxAgeSec: this.#settings.initDataMaxAgeSec,
    });
    commands.register(background);
    if (mode === "webhook")
      await startWebhook(ctx.routes, {
        bot,
        path: botPath(botId, "/webhook"),
        secretName: botId ? `webhook_secret.${botId}` : "webhook_secret",
        settings: this.#bot,
        ctx,
        background,
        log,
        stopped,
      });
    else this.#polling = startPolling({ bot, log, stopped });
    log.info({ bot: me.username, mode }, "Telegram bot connected");
  }

  /** getMe: a bad token or an unreachable API stops the start with what to fix. */
  async #init(): Promise<void> {
    try {
      await this.#grammy.init();
    } catch (err) {
      if (err instanceof GrammyError) {
        throw new Error(
          `Telegram rejected ${this.#bot.tokenVar} (${err.description}); copy the token @BotFather gave you`,
        );
      }
      const root = this.#settings.apiRoot ?? "https://api.telegram.org";
      throw new Error(
        `could not reach the Telegram Bot API at ${root} (${(err as Error).message}); check the network${this.#settings.apiRoot ? " and TELEGRAM_API_ROOT" : ""}`,
      );
    }
  }

  /** The chats' logged group messages (chat-log.ts); there once started. */
  get history(): TelegramChatLog | undefined {
    return this.#chatLog;
  }

  async stop(): Promise<void> {
    this.#stopped.abort();
    if (this.#polling) {
      await this.#grammy
        .stop()
        .catch(
          bestEffort(
            this.#log,
            "Telegram polling stop not confirmed: its last updates may arrive again",
          ),
        );
      await this.#polling; // never rejects: startPolling reports its failure
    }
    await this.#background?.settle();
    this.#views.clear();
  }

  async deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  ): Promise<void> {
    await deliverTurn(origin, turn, {
      views: this.#views,
      platform: "telegram",
      log: this.#log,
      background: this.#background,
      ctx: this.#ctx,
      intervalMs: origin.isDirect
        ? this.#settings.streamIntervalMs
        : this.#settings.groupStreamIntervalMs,
      // In a group the card is public: its settings link goes to the person's private chat instead.
      sendLinkPrivately: (request) => this.#commands.requestLink(origin, request),
      surface: (settingsUrl, messageId) =>
        new TelegramSurface(this.#grammy.api, origin, {
          state: this.#ctx.state,
          settingsUrl,
          log: this.#log,
          messageId,
        }),
    });
  }

  async notify(origin: Origin, text: string): Promise<void> {
    await sendText(this.#grammy.api, origin, text);
  }
}

/**
 * A named bot's view of the platform's context: its log lines say which bot,
 * and its chat logs are its own (two bots in one group see different
 * messages with privacy mode on). State, once-markers and secrets are
 * shared: their keys already name the bot where they must.
 */
function botScoped(ctx: AdapterContext, botId: string): AdapterContext {
  const log = ctx.log.child({ bot: botId });
  return {
    ...ctx,
    log,
    // A getter on ctx (the URL is known once the gateway listens): read it through.
    get publicUrl() {
      return ctx.publicUrl;
    },
    logs: {
      append: (name, data, opts) => ctx.logs.append(`bot:${botId}:${name}`, data, opts),
      newest: (name, opts) => ctx.logs.newest(`bot:${botId}:${name}`, opts),
    },
  };
}
