import type { API } from "@discordjs/core";
import { type AgentEvent, registerSecret } from "@lobu/core";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext, PlatformAdapter } from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { deliverTurn } from "../shared/deliver.ts";
import type { CapabilityRequest } from "../shared/private-links.ts";
import { TurnViews } from "../shared/turn-view.ts";
import { dcCall } from "./client.ts";
import { linkRow } from "./components.ts";
import type { DiscordSettings } from "./config.ts";
import { DiscordFiles } from "./files.ts";
import { toDiscord } from "./format.ts";
import {
  connectGateway,
  DISCORD_GATEWAY_ACK,
  type DiscordConnection,
  restClient,
} from "./gateway.ts";
import { handleCommand, handleComponent } from "./interactivity.ts";
import { handleGatewayMessage } from "./messages.ts";
import { type DcCard, type DcLive, DiscordSurface } from "./surface.ts";
import { interactionsReceiver } from "./webhook/receiver.ts";

const LOBU_COMMAND = {
  name: "lobu",
  description: "Your personal Lobu settings (API keys, accounts, approvals); only you see the link",
  type: 1,
};

/**
 * Discord: messages over the Gateway (@discordjs/ws and @discordjs/core),
 * servers, threads and DMs, replies streamed by editing, buttons and select
 * menus for requests, and `/lobu` for the settings link, with interactions
 * over HTTP signed with Ed25519. This class only wires the parts.
 */
export class DiscordAdapter implements PlatformAdapter {
  readonly platform = "discord";
  /** Attachments in, files out. */
  readonly files: DiscordFiles;
  readonly #settings: DiscordSettings;
  readonly #views = new TurnViews<DcLive, DcCard>();
  readonly #stopped = new AbortController();
  #ctx!: AdapterContext;
  #log!: Logger;
  #background!: Background;
  #connection: DiscordConnection | undefined;

  constructor(settings: DiscordSettings) {
    // Whatever logs it by mistake (an error echoing a request) shows [REDACTED] instead.
    registerSecret(settings.token);
    this.#settings = settings;
    this.files = new DiscordFiles(() => this.#api, settings.apiRoot);
  }

  async start(ctx: AdapterContext): Promise<void> {
    const settings = this.#settings;
    this.#ctx = ctx;
    const log = ctx.log;
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
      publicKey: settings.publicKey,
      ctx,
      log,
      component: (i) => handleComponent({ ctx, views: this.#views, log }, i),
      command: (i) => handleCommand({ ctx }, i),
    });
    let botId = "";
    // One message after the other, in the order the Gateway sent them (a person's quick follow-up stays second).
    let inOrder: Promise<unknown> = Promise.resolve();
    const connection = await connectGateway(settings, restClient(settings), log, (data) =>
      background.run(() => {
        inOrder = inOrder
          .catch(() => undefined)
          .then(() =>
            handleGatewayMessage({ botId, agentId: settings.agentId, ctx, inbound, log }, data),
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
    await Promise.resolve(this.#connection?.gateway.destroy()).catch(() => undefined);
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
