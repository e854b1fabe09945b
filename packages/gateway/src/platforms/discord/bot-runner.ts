import type { API } from "@discordjs/core";
import { type AgentEvent, registerSecret } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { deliverTurn } from "../shared/deliver.ts";
import { withRetryLater } from "../shared/pacing.ts";
import type { CapabilityRequest } from "../shared/private-links.ts";
import { TurnViews } from "../shared/turn-view.ts";
import { dcCall } from "./client.ts";
import { linkRow } from "./components.ts";
import type { DiscordBotSettings, DiscordSettings } from "./config.ts";
import { DiscordFiles } from "./files.ts";
import { toDiscord } from "./format.ts";
import {
  connectGateway,
  DISCORD_GATEWAY_ACK,
  type DiscordConnection,
  restClient,
} from "./gateway.ts";
import { DiscordHistory } from "./history.ts";
import { handleCommand, handleComponent } from "./interactivity.ts";
import { handleGatewayMessage } from "./messages.ts";
import { type DcCard, type DcLive, DiscordSurface } from "./surface.ts";
import { INTERACTIONS_PATH, interactionsReceiver } from "./webhook/receiver.ts";

const LOBU_COMMAND = {
  name: "lobu",
  description: "Your personal Lobu settings (API keys, accounts, approvals); only you see the link",
  type: 1,
};

/** Where a bot's interactions arrive: /discord/interactions, or /discord/<id>/interactions for a named one. */
export function interactionsPath(botId: string): string {
  return botId ? `/discord/${botId}/interactions` : INTERACTIONS_PATH;
}

/**
 * One Discord bot (one application) of the gateway: its Gateway
 * connection, REST client, interactions endpoint and replies. Every origin
 * it makes carries its id as the `workspace` (none for the
 * DISCORD_BOT_TOKEN bot), so replies, buttons and files go back out through
 * this bot, and two bots in one channel are two conversations.
 */
export class DiscordBotRunner {
  /** Attachments in, files out. */
  readonly files: DiscordFiles;
  /** Earlier messages of its channels and threads, read with its token. */
  readonly history: DiscordHistory;
  readonly #bot: DiscordBotSettings;
  readonly #settings: DiscordSettings;
  readonly #views = new TurnViews<DcLive, DcCard>();
  readonly #stopped = new AbortController();
  #ctx!: AdapterContext;
  #log!: Logger;
  #background!: Background;
  #connection: DiscordConnection | undefined;

  constructor(bot: DiscordBotSettings, settings: DiscordSettings) {
    // Whatever logs it by mistake (an error echoing a request) shows [REDACTED] instead.
    registerSecret(bot.token);
    this.#bot = bot;
    this.#settings = settings;
    this.files = new DiscordFiles(() => this.#api, settings.apiRoot);
    this.history = new DiscordHistory(
      () => this.#api,
      () => this.#connection?.botId ?? "",
    );
  }

  async start(platformCtx: AdapterContext): Promise<void> {
    const settings = this.#settings;
    const configId = this.#bot.id;
    const log = configId ? platformCtx.log.child({ bot: configId }) : platformCtx.log;
    const ctx = configId ? withLog(platformCtx, log) : platformCtx;
    this.#ctx = ctx;
    this.#log = log;
    const background = new Background(log);
    this.#background = background;
    const inbound = {
      ctx,
      policy: DISCORD_GATEWAY_ACK,
      log,
      background,
      notify: (origin: Origin, text: string) => this.notify(origin, text),
      stopped: this.#stopped.signal,
    };
    interactionsReceiver(ctx.routes, {
      path: interactionsPath(configId),
      publicKey: this.#bot.publicKey,
      ctx,
      log,
      component: (i) => handleComponent({ botId: configId, ctx, views: this.#views, log }, i),
      command: async (i) =>
        handleCommand(
          {
            botId: configId,
            ctx,
            background,
            editReply: async (interaction, message) => {
              await withRetryLater(() =>
                dcCall(() =>
                  this.#api.interactions.editReply(
                    interaction.application_id,
                    interaction.token,
                    message,
                  ),
                ),
              );
            },
          },
          i,
        ),
    });
    const connectWith = { apiRoot: settings.apiRoot, token: this.#bot.token };
    let botId = "";
    // One message after the other, in the order the Gateway sent them (a person's quick follow-up stays second).
    let inOrder: Promise<unknown> = Promise.resolve();
    const connection = await connectGateway(
      { ...connectWith, tokenVar: this.#bot.tokenVar },
      restClient(connectWith),
      log,
      (data) =>
        background.run(() => {
          inOrder = inOrder
            .catch(() => undefined)
            .then(() =>
              handleGatewayMessage(
                { botId, configId, agentId: this.#bot.agentId, ctx, inbound, log },
                data,
              ),
            );
          return inOrder;
        }, "could not handle a Discord message"),
    );
    botId = connection.botId;
    this.#connection = connection;
    if (settings.registerCommands)
      background.run(
        () =>
          connection.client.api.applicationCommands.bulkOverwriteGlobalCommands(
            connection.applicationId,
            [LOBU_COMMAND],
          ),
        "could not register the /lobu command",
      );
    log.info({ botId }, "Discord bot connected");
  }

  get #api(): API {
    if (!this.#connection) throw new Error("the Discord adapter is not started");
    return this.#connection.client.api;
  }

  async stop(): Promise<void> {
    this.#stopped.abort();
    await Promise.resolve(this.#connection?.gateway.destroy()).catch(
      bestEffort(this.#log, "Discord Gateway connection not closed at stop"),
    );
    await this.#background?.settle();
    this.#views.clear();
  }

  async deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  ): Promise<void> {
    await deliverTurn(origin, turn, {
      views: this.#views,
      platform: "discord",
      log: this.#log,
      background: this.#background,
      ctx: this.#ctx,
      intervalMs: this.#settings.streamIntervalMs,
      // In a server the card is public: its settings link goes to the person's DMs instead.
      sendLinkPrivately: (request) => this.#requestLink(origin, request),
      surface: (settingsUrl, messageId) =>
        new DiscordSurface(this.#api, origin, {
          state: this.#ctx.state,
          settingsUrl,
          log: this.#log,
          messageId,
        }),
    });
  }

  async notify(origin: Origin, text: string): Promise<void> {
    for (const content of toDiscord(text))
      await dcCall(() =>
        this.#api.channels.createMessage(origin.channelId, {
          content,
          allowed_mentions: { parse: [] },
        }),
      );
  }

  async #requestLink(origin: Origin, request: CapabilityRequest): Promise<void> {
    const url = request.url ?? (await this.#ctx.settingsLink(origin));
    const dm = await dcCall(() => this.#api.users.createDM(origin.userId));
    await dcCall(() =>
      this.#api.channels.createMessage(dm.id, {
        content: `The agent asks for ${request.value}. Answer in your settings:`,
        components: [linkRow("Open settings", url)],
      }),
    );
  }
}

/** The platform's context with a named bot's logger (its lines say which bot). */
function withLog(ctx: AdapterContext, log: Logger): AdapterContext {
  return Object.create(ctx, { log: { value: log, enumerable: true } }) as AdapterContext;
}
