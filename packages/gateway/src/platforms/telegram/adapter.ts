import { type AgentEvent, LobuError } from "@lobu/core";
import type {
  DownloadOptions,
  InboundFile,
  OutboundFile,
  PlatformFiles,
} from "../../domain/files.ts";
import type { ConversationHistory, HistoryPlace } from "../../domain/history.ts";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext, PlatformAdapter } from "../shared/adapter.ts";
import { TelegramBotRunner } from "./bot-runner.ts";
import type { TelegramSettings } from "./config.ts";

/**
 * Telegram: webhook or long polling (grammY), private chats, groups and forum
 * topics, replies streamed by editing, inline keyboards for requests, and the
 * settings page as a Mini App. One gateway runs one bot per agent if asked
 * (`[platforms.telegram.bots.<id>]`): each is a TelegramBotRunner
 * (bot-runner.ts), and everything going out picks the bot its origin names
 * (`workspace`), so a reply leaves through the bot that got the message.
 */
export class TelegramAdapter implements PlatformAdapter {
  readonly platform = "telegram";
  /** Attachments in, files out, each through the bot of its conversation. */
  readonly files: PlatformFiles;
  readonly #bots: Map<string, TelegramBotRunner>;
  #history: ConversationHistory | undefined;

  constructor(settings: TelegramSettings) {
    this.#bots = new Map(settings.bots.map((b) => [b.id, new TelegramBotRunner(b, settings)]));
    this.files = {
      download: (origin: Origin, file: InboundFile, opts: DownloadOptions) =>
        this.#botOf(origin).files.download(origin, file, opts),
      upload: (origin: Origin, file: OutboundFile) =>
        this.#botOf(origin).files.upload(origin, file),
    };
  }

  async start(ctx: AdapterContext): Promise<void> {
    for (const bot of this.#bots.values()) await bot.start(ctx);
    this.#history = {
      recent: (place: HistoryPlace, opts) => this.#historyOf(place).recent(place, opts),
      page: (place: HistoryPlace, req) => this.#historyOf(place).page(place, req),
    };
  }

  /** The chats' logged group messages, each bot's its own (chat-log.ts); there once started. */
  get history(): ConversationHistory | undefined {
    return this.#history;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#bots.values()].map((b) => b.stop()));
  }

  async deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  ): Promise<void> {
    await this.#botOf(origin).deliver(origin, turn);
  }

  async notify(origin: Origin, text: string): Promise<void> {
    await this.#botOf(origin).notify(origin, text);
  }

  #historyOf(place: HistoryPlace): ConversationHistory {
    const history = this.#botOf(place.origin).history;
    if (!history) throw new Error("the Telegram adapter is not started");
    return history;
  }

  /**
   * The bot a conversation belongs to. One removed from lobu.toml since (a
   * schedule set up through it) is an error: no other bot may answer for it.
   */
  #botOf(origin: Pick<Origin, "workspace">): TelegramBotRunner {
    const id = origin.workspace ?? "";
    const bot = this.#bots.get(id);
    if (!bot) {
      throw new LobuError(
        "platform_config",
        id
          ? `telegram: no bot "${id}" runs on this gateway`
          : "telegram: TELEGRAM_BOT_TOKEN is not set on this gateway",
        { hint: "The conversation came through a bot that is no longer in lobu.toml." },
      );
    }
    return bot;
  }
}
