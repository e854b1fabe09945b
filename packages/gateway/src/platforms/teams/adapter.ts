import { type AgentEvent, registerSecret } from "@lobu/core";
import type { Logger } from "pino";
import type { ConversationHistory } from "../../domain/history.ts";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext, PlatformAdapter } from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { deliverTurn } from "../shared/deliver.ts";
import { fileLinkRoute } from "../shared/file-links.ts";
import { TurnViews } from "../shared/turn-view.ts";
import { CardStore } from "./card-store.ts";
import { ConnectorClient, ConnectorToken, teamsCall } from "./client.ts";
import { sendPrivately, sendRequestLink } from "./commands.ts";
import type { TeamsSettings } from "./config.ts";
import { Conversations } from "./conversations.ts";
import { DOWNLOAD_HOSTS, TeamsFiles } from "./files.ts";
import { toTeams } from "./format.ts";
import { GraphFiles } from "./graph-files.ts";
import { GraphTokens } from "./graph-tokens.ts";
import { TeamsHistory } from "./history.ts";
import {
  handleExecute,
  handleStop,
  handleSubmit,
  type InteractivityDeps,
} from "./interactivity.ts";
import { handleMessage } from "./messages.ts";
import { TeamsSurface, type TmCard, type TmLive } from "./surface.ts";
import { type Activity, classify, graphChannelOf, originOf, tenantOf } from "./webhook/parse.ts";
import { MESSAGES_PATH, messagesReceiver, TEAMS_ACK } from "./webhook/receiver.ts";
import { BotFrameworkKeys } from "./webhook/verify.ts";

/**
 * Microsoft Teams over the Bot Framework: activities posted to
 * /teams/messages with the connector's JWT, replies through the Bot
 * Connector REST API (streamed by updating the message), Adaptive Cards
 * with Action.Execute (card refresh) or Action.Submit for requests, and
 * settings links in the person's 1:1 chat, a thread's or group chat's
 * earlier messages as context through Microsoft Graph (history.ts). This
 * class only wires the parts.
 */
export class TeamsAdapter implements PlatformAdapter {
  readonly platform = "teams";
  /** Attachments in, files out. */
  readonly files: TeamsFiles;
  /** A channel thread's or group chat's earlier messages, read through Graph. */
  readonly history: ConversationHistory;
  readonly #settings: TeamsSettings;
  readonly #client: ConnectorClient;
  readonly #views = new TurnViews<TmLive, TmCard>();
  readonly #stopped = new AbortController();
  #ctx!: AdapterContext;
  #log!: Logger;
  #background!: Background;
  #conversations!: Conversations;
  #cards!: CardStore;

  constructor(settings: TeamsSettings) {
    // Whatever logs it by mistake (an error echoing a request) shows [REDACTED] instead.
    registerSecret(settings.appPassword);
    this.#settings = settings;
    this.#client = new ConnectorClient(new ConnectorToken(settings), settings.serviceHosts);
    // One token per tenant, for files and history alike.
    const graphTokens = new GraphTokens(settings);
    this.history = new TeamsHistory({
      tokens: graphTokens,
      graphUrl: settings.graphUrl,
      appId: settings.appId,
      conversations: () => this.#conversations,
    });
    this.files = new TeamsFiles({
      client: this.#client,
      serviceHosts: settings.serviceHosts,
      graph: new GraphFiles(settings, [...DOWNLOAD_HOSTS, ...settings.serviceHosts], graphTokens),
      uploadChannelFiles: settings.uploadChannelFiles,
      deps: () => ({
        log: this.#log,
        state: this.#ctx.state,
        publicUrl: this.#ctx.publicUrl,
        conversations: this.#conversations,
      }),
    });
  }

  async start(ctx: AdapterContext): Promise<void> {
    const settings = this.#settings;
    this.#ctx = ctx;
    const log = ctx.log;
    this.#log = log;
    const background = new Background(log);
    this.#background = background;
    this.#conversations = new Conversations(ctx.state, log);
    this.#cards = new CardStore(ctx.state, log);
    const inbound = {
      ctx,
      policy: TEAMS_ACK,
      log,
      background,
      notify: (origin: Origin, text: string) => this.notify(origin, text),
      stopped: this.#stopped.signal,
    };
    const clicks: InteractivityDeps = {
      ctx,
      views: this.#views,
      cards: this.#cards,
      client: this.#client,
      background,
      log,
    };
    const handle = async (activity: Activity) => {
      const item = classify(activity);
      if (item.kind === "ignore") {
        log.debug({ reason: item.reason }, "ignoring Teams activity");
        return undefined;
      }
      const origin = originOf(activity);
      const ref = {
        serviceUrl: activity.serviceUrl,
        botId: activity.recipient?.id ?? `28:${settings.appId}`,
        ...(tenantOf(activity) ? { tenantId: tenantOf(activity) } : {}),
        ...(graphChannelOf(activity) ? { graphChannel: graphChannelOf(activity) } : {}),
      };
      await this.#conversations.remember(origin.channelId, ref);
      if (item.kind === "execute") return handleExecute(clicks, origin, item.answer);
      if (item.kind === "stop") {
        const tellPrivately = (o: Origin, text: string) =>
          sendPrivately({ client: this.#client }, o, ref, { type: "message", text });
        return handleStop({ ctx, background, tellPrivately }, origin, item.stop, item.invoke);
      }
      if (item.kind === "submit") {
        const tellPrivately = (o: Origin, text: string) =>
          sendPrivately({ client: this.#client }, o, ref, { type: "message", text });
        await handleSubmit({ ...clicks, tellPrivately }, origin, ref, item.answer);
        return undefined;
      }
      await handleMessage(
        { ctx, client: this.#client, agentId: settings.agentId, inbound, background, log },
        { origin, ref, text: item.text, files: item.files },
      );
      return undefined;
    };
    messagesReceiver(ctx.routes, {
      appId: settings.appId,
      keys: new BotFrameworkKeys(settings.openIdMetadataUrl),
      ctx,
      log,
      handle,
    });
    fileLinkRoute(ctx, this.platform);
    log.info({ appId: settings.appId }, `Teams messaging endpoint ready at ${MESSAGES_PATH}`);
  }

  async stop(): Promise<void> {
    this.#stopped.abort();
    await this.#background?.settle();
    this.#views.clear();
  }

  async deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent> },
  ): Promise<void> {
    const ref = await this.#conversations.get(origin.channelId);
    const deps = { ctx: this.#ctx, client: this.#client };
    await deliverTurn(origin, turn, {
      views: this.#views,
      platform: this.platform,
      log: this.#log,
      background: this.#background,
      ctx: this.#ctx,
      intervalMs: this.#settings.streamIntervalMs,
      // In a channel or group chat the card is public: its settings link goes to the 1:1 chat.
      sendLinkPrivately: (request) => sendRequestLink(deps, origin, ref, request),
      surface: (settingsUrl, messageId) =>
        new TeamsSurface({
          messageId,
          client: this.#client,
          ref,
          origin,
          cards: this.#cards,
          settingsUrl,
          log: this.#log,
        }),
    });
  }

  async notify(origin: Origin, text: string): Promise<void> {
    const ref = await this.#conversations.get(origin.channelId);
    for (const chunk of toTeams(text))
      await teamsCall(() =>
        this.#client.send(ref.serviceUrl, origin.channelId, {
          type: "message",
          text: chunk,
          textFormat: "markdown",
          ...(origin.messageRef ? { replyToId: origin.messageRef } : {}),
        }),
      );
  }
}
