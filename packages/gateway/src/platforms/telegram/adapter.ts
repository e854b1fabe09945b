import type { AgentEvent } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import { Bot, GrammyError } from "grammy";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import {
  type AdapterContext,
  type PlatformAdapter,
  REDELIVERY_MEMORY_MS,
} from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { deliverTurn } from "../shared/deliver.ts";
import { handleOnce } from "../shared/once.ts";
import { TurnViews } from "../shared/turn-view.ts";
import { TelegramChatLog } from "./chat-log.ts";
import { sendText } from "./client.ts";
import { TelegramCommands } from "./commands.ts";
import type { TelegramSettings } from "./config.ts";
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

/**
 * Telegram: webhook or long polling (grammY), private chats, groups and forum
 * topics, replies streamed by editing, inline keyboards for requests, and the
 * settings page as a Mini App. This class only wires the parts: grammY hands
 * each update (webhook/receiver.ts, or polling) once to messages.ts or
 * interactivity.ts; replies render on surface.ts.
 */
export class TelegramAdapter implements PlatformAdapter {
  readonly platform = "telegram";
  /** Attachments in, files out. */
  readonly files: TelegramFiles;
  readonly #settings: TelegramSettings;
  readonly #views = new TurnViews<TgLive, TgCard>();
  readonly #bot: Bot;
  readonly #stopped = new AbortController();
  #ctx!: AdapterContext;
  #log!: Logger;
  #background!: Background;
  #commands!: TelegramCommands;
  #polling: Promise<void> | undefined;
  #chatLog: TelegramChatLog | undefined;

  constructor(settings: TelegramSettings) {
    this.#settings = settings;
    this.#bot = new Bot(
      settings.token,
      settings.apiRoot ? { client: { apiRoot: settings.apiRoot } } : {},
    );
    this.files = new TelegramFiles({
      api: this.#bot.api,
      token: settings.token,
      apiRoot: settings.apiRoot,
    });
  }

  async start(ctx: AdapterContext): Promise<void> {
    const settings = this.#settings;
    const bot = this.#bot;
    this.#ctx = ctx;
    const log = ctx.log;
    this.#log = log;
    const background = new Background(log);
    this.#background = background;
    await this.#init();
    const me = { id: bot.botInfo.id, username: bot.botInfo.username };
    const commands = new TelegramCommands({
      api: bot.api,
      botUsername: me.username,
      ctx,
      log,
    });
    this.#commands = commands;
    const chatLog = new TelegramChatLog({
      logs: ctx.logs,
      settings: settings.history,
      bot: me,
      log,
    });
    this.#chatLog = chatLog;
    const stopped = this.#stopped.signal;
    const inbound = {
      ctx,
      policy: settings.mode === "webhook" ? TELEGRAM_WEBHOOK_ACK : TELEGRAM_POLLING_ACK,
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
    bot.on("message", (c) =>
      handleMessage({ me, settings, commands, directory, binder: ctx, inbound, chatLog, log }, c),
    );
    bot.on("callback_query:data", (c) =>
      handleCallbackQuery({ api: bot.api, ctx, views: this.#views, log }, c),
    );
    bot.catch((err) =>
      log.error(
        { err: err.error, updateId: err.ctx.update.update_id },
        "could not handle a Telegram update",
      ),
    );
    webAppRoutes(ctx.routes, settings);
    commands.register(background);
    if (settings.mode === "webhook")
      await startWebhook(ctx.routes, { bot, settings, ctx, background, log, stopped });
    else this.#polling = startPolling({ bot, log, stopped });
    log.info({ bot: me.username, mode: settings.mode }, "Telegram bot connected");
  }

  /** getMe: a bad token or an unreachable API stops the start with what to fix. */
  async #init(): Promise<void> {
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
  }

  /** The chats' logged group messages (chat-log.ts); there once started. */
  get history(): TelegramChatLog | undefined {
    return this.#chatLog;
  }

  async stop(): Promise<void> {
    this.#stopped.abort();
    if (this.#polling) {
      await this.#bot
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
      platform: this.platform,
      log: this.#log,
      background: this.#background,
      ctx: this.#ctx,
      intervalMs: origin.isDirect
        ? this.#settings.streamIntervalMs
        : this.#settings.groupStreamIntervalMs,
      // In a group the card is public: its settings link goes to the person's private chat instead.
      sendLinkPrivately: (request) => this.#commands.requestLink(origin, request),
      surface: (settingsUrl, messageId) =>
        new TelegramSurface(this.#bot.api, origin, {
          state: this.#ctx.state,
          settingsUrl,
          log: this.#log,
          messageId,
        }),
    });
  }

  async notify(origin: Origin, text: string): Promise<void> {
    await sendText(this.#bot.api, origin, text);
  }
}
