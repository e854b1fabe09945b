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
import { DiscordBotRunner } from "./bot-runner.ts";
import type { DiscordSettings } from "./config.ts";

/**
 * Discord: messages over the Gateway (@discordjs/ws and @discordjs/core),
 * servers, threads and DMs, replies streamed by editing, buttons and select
 * menus for requests, and `/lobu` for the settings link, with interactions
 * over HTTP signed with Ed25519. A mention's channel or thread gives its
 * earlier messages as context (history.ts). One gateway runs one bot per agent if asked
 * (`[platforms.discord.bots.<id>]`): each is a DiscordBotRunner
 * (bot-runner.ts), and everything going out picks the bot its origin names
 * (`workspace`).
 */
export class DiscordAdapter implements PlatformAdapter {
  readonly platform = "discord";
  /** Attachments in, files out, each through the bot of its conversation. */
  readonly files: PlatformFiles;
  /** A thread's (or channel's) earlier messages, read through the bot of its conversation. */
  readonly history: ConversationHistory;
  readonly #bots: Map<string, DiscordBotRunner>;

  constructor(settings: DiscordSettings) {
    this.#bots = new Map(settings.bots.map((b) => [b.id, new DiscordBotRunner(b, settings)]));
    this.files = {
      download: (origin: Origin, file: InboundFile, opts: DownloadOptions) =>
        this.#botOf(origin).files.download(origin, file, opts),
      upload: (origin: Origin, file: OutboundFile) =>
        this.#botOf(origin).files.upload(origin, file),
    };
    this.history = {
      recent: (place: HistoryPlace, opts) => this.#botOf(place.origin).history.recent(place, opts),
      page: (place: HistoryPlace, req) => this.#botOf(place.origin).history.page(place, req),
    };
  }

  async start(ctx: AdapterContext): Promise<void> {
    for (const bot of this.#bots.values()) await bot.start(ctx);
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

  /** The bot a conversation belongs to; one removed from lobu.toml since is an error. */
  #botOf(origin: Pick<Origin, "workspace">): DiscordBotRunner {
    const id = origin.workspace ?? "";
    const bot = this.#bots.get(id);
    if (!bot)
      throw new LobuError(
        "platform_config",
        id
          ? `discord: no bot "${id}" runs on this gateway`
          : "discord: DISCORD_BOT_TOKEN is not set on this gateway",
        { hint: "The conversation came through a bot that is no longer in lobu.toml." },
      );
    return bot;
  }
}
