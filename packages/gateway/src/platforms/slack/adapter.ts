import type { AgentEvent } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import type { SocketModeClient } from "@slack/socket-mode";
import type { Logger } from "pino";
import type { Persona } from "../../domain/messages.ts";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext, PlatformAdapter } from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { deliverTurn } from "../shared/deliver.ts";
import { withRetryLater } from "../shared/pacing.ts";
import { TurnViews } from "../shared/turn-view.ts";
import { AssistantThreads } from "./assistant.ts";
import { section } from "./blocks.ts";
import { slackCall } from "./client.ts";
import { SlackCommands } from "./commands.ts";
import type { SlackSettings } from "./config.ts";
import { SlackDirectory } from "./directory.ts";
import { SlackEvents } from "./events.ts";
import { SlackFiles } from "./files.ts";
import { SlackHistory } from "./history.ts";
import { handleBlockActions } from "./interactivity.ts";
import { toMrkdwnSections } from "./mrkdwn.ts";
import { oauthRoutes } from "./oauth.ts";
import { SLACK_SOCKET_ACK, startSocketReceiver } from "./socket.ts";
import { type SlackCard, type SlackLive, SlackSurface } from "./surface.ts";
import { UserNames } from "./user-names.ts";
import type { SlackHandlers } from "./webhook/parse.ts";
import { httpReceiver, SLACK_HTTP_ACK } from "./webhook/receiver.ts";
import { Workspaces } from "./workspaces.ts";

/**
 * Slack: the Events API over HTTP (or Socket Mode), Block Kit replies that
 * stream by editing one message, buttons for requests, OAuth installs into
 * several workspaces. This class only wires the parts: receivers
 * (webhook/receiver.ts, socket.ts) hand verified deliveries to events.ts,
 * interactivity.ts and commands.ts; replies render on surface.ts.
 */
export class SlackAdapter implements PlatformAdapter {
  readonly platform = "slack";
  /** Attachments in, files out (set once started: it needs the workspaces). */
  files: SlackFiles | undefined;
  readonly #settings: SlackSettings;
  readonly #views = new TurnViews<SlackLive, SlackCard>();
  #ctx!: AdapterContext;
  #log!: Logger;
  #workspaces!: Workspaces;
  #commands!: SlackCommands;
  #background!: Background;
  #assistant!: AssistantThreads;
  #socket: SocketModeClient | undefined;
  #history: SlackHistory | undefined;

  constructor(settings: SlackSettings) {
    this.#settings = settings;
  }

  async start(ctx: AdapterContext): Promise<void> {
    const settings = this.#settings;
    this.#ctx = ctx;
    const log = ctx.log;
    this.#log = log;
    const background = new Background(log);
    this.#background = background;
    const assistant = new AssistantThreads({ settings, state: ctx.state, background, log });
    this.#assistant = assistant;
    const workspaces = new Workspaces(settings.apiUrl, log, ctx);
    this.#workspaces = workspaces;
    this.files = new SlackFiles(workspaces, settings.apiUrl);
    if (settings.botToken) {
      const ws = await workspaces.addEnvToken(settings.botToken);
      log.info({ team: ws.teamName ?? ws.teamId, botUserId: ws.botUserId }, "Slack bot connected");
    }
    const commands = new SlackCommands({
      ctx,
      workspaces,
      apiUrl: settings.apiUrl,
      background,
      log,
    });
    this.#commands = commands;
    // One users.info cache serves display names (history) and the access check.
    const directory = new SlackDirectory(log);
    this.#history = new SlackHistory({ workspaces, names: new UserNames(directory) });
    const events = new SlackEvents({
      settings,
      state: ctx.state,
      workspaces,
      directory,
      commands,
      assistant,
      inbound: {
        ctx,
        policy: settings.mode === "socket" ? SLACK_SOCKET_ACK : SLACK_HTTP_ACK,
        log,
        background,
        notify: (origin, text) => this.notify(origin, text),
      },
      ctx,
      log,
    });
    const handlers: SlackHandlers = {
      event: (body) => events.handle(body),
      interaction: (payload) =>
        handleBlockActions({ ctx, views: this.#views, workspaces, background }, payload),
      command: (fields) => commands.slash(fields),
    };
    if (settings.mode === "http") {
      httpReceiver(ctx.routes, {
        signingSecret: settings.signingSecret as string,
        ctx,
        log,
        handlers,
      });
    }
    oauthRoutes(ctx.routes, { settings, ctx, workspaces, log });
    if (settings.mode === "socket") {
      this.#socket = await startSocketReceiver({
        appToken: settings.appToken as string,
        apiUrl: settings.apiUrl,
        log,
        handlers,
      });
    }
  }

  /** Threads and channels read with the bot token (history.ts); there once started. */
  get history(): SlackHistory | undefined {
    return this.#history;
  }

  async stop(): Promise<void> {
    const socket = this.#socket;
    this.#socket = undefined;
    await socket
      ?.disconnect()
      .catch(bestEffort(this.#log, "Slack Socket Mode not disconnected cleanly"));
    await this.#background?.settle();
    this.#views.clear();
  }

  async deliver(
    origin: Origin,
    turn: { messageId: string; events: AsyncIterable<AgentEvent>; persona?: Persona },
  ): Promise<void> {
    const ws = await this.#workspaces.get(origin.workspace);
    if (!ws) {
      this.#log.error(
        { team: origin.workspace },
        "no bot token for this Slack workspace; the reply cannot be posted",
      );
      return;
    }
    const assistantThread =
      origin.isDirect &&
      (await this.#assistant.isThread(ws.teamId, origin.channelId, origin.threadId));
    await deliverTurn(origin, turn, {
      views: this.#views,
      platform: this.platform,
      log: this.#log,
      background: this.#background,
      ctx: this.#ctx,
      intervalMs: this.#settings.streamIntervalMs,
      // Outside a DM the card is public: its settings link goes to the person as an ephemeral instead.
      sendLinkPrivately: (request) => this.#commands.requestLink(ws, origin, request),
      surface: (settingsUrl, messageId) =>
        new SlackSurface(ws.client, origin, {
          messageId,
          nativeStreaming: this.#settings.nativeStreaming,
          assistantThread,
          maxInlineChars: this.#settings.maxInlineChars,
          settingsUrl,
          log: this.#log,
          persona: turn.persona,
        }),
    });
  }

  async notify(origin: Origin, text: string): Promise<void> {
    const ws = await this.#workspaces.get(origin.workspace);
    if (!ws) return;
    // A notice must arrive: the delivery policy waits out limits and outages.
    await withRetryLater(() =>
      slackCall(() =>
        ws.client.chat.postMessage({
          channel: origin.channelId,
          ...(origin.threadId ? { thread_ts: origin.threadId } : {}),
          text,
          blocks: toMrkdwnSections(text)
            .slice(0, 10)
            .map((t) => section(t)),
        }),
      ),
    );
  }
}
