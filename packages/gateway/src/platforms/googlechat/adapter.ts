import type { AgentEvent } from "@lobu/core";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext, PlatformAdapter } from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { deliverTurn } from "../shared/deliver.ts";
import { fileLinkRoute } from "../shared/file-links.ts";
import type { CapabilityRequest } from "../shared/private-links.ts";
import { TurnViews } from "../shared/turn-view.ts";
import { linkCard } from "./cards.ts";
import { type ChatApi, chatClient, gcCall } from "./client.ts";
import type { GoogleChatSettings } from "./config.ts";
import { GoogleChatFiles } from "./files.ts";
import { toChat } from "./format.ts";
import { type ChatResponse, handleClick, handleSettingsCommand, welcome } from "./interactivity.ts";
import { handleChatMessage } from "./messages.ts";
import { type PrivateTarget, sendPrivately } from "./private-message.ts";
import { type GcCard, type GcLive, GoogleChatSurface } from "./surface.ts";
import { type ChatEvent, type ChatMessageEvent, commandIdOf } from "./webhook/parse.ts";
import { EVENTS_PATH, eventsReceiver, GOOGLE_CHAT_ACK } from "./webhook/receiver.ts";
import { chatTokenVerifier } from "./webhook/verify.ts";

/**
 * Google Chat: events on an HTTP endpoint, each with a Google-signed bearer
 * token; replies sent asynchronously through the Chat API (@googleapis/chat)
 * as the app's service account, streamed by editing, in the person's thread;
 * Cards v2 buttons for requests and `/lobu` for the settings link. This
 * class only wires the parts.
 */
export class GoogleChatAdapter implements PlatformAdapter {
  readonly platform = "googlechat";
  /** Attachments in (media.download), files out (a download link). */
  readonly files: GoogleChatFiles;
  readonly #settings: GoogleChatSettings;
  readonly #views = new TurnViews<GcLive, GcCard>();
  readonly #stopped = new AbortController();
  readonly #api: ChatApi;
  #ctx!: AdapterContext;
  #log!: Logger;
  #background!: Background;

  constructor(settings: GoogleChatSettings) {
    this.#settings = settings;
    this.#api = chatClient(settings);
    this.files = new GoogleChatFiles(this.#api, () => ({
      state: this.#ctx.state,
      publicUrl: this.#ctx.publicUrl,
    }));
  }

  async start(ctx: AdapterContext): Promise<void> {
    const settings = this.#settings;
    this.#ctx = ctx;
    const log = ctx.log;
    this.#log = log;
    const background = new Background(log);
    this.#background = background;
    const messages = {
      agentId: settings.agentId,
      ctx,
      log,
      inbound: {
        ctx,
        policy: GOOGLE_CHAT_ACK,
        log,
        background,
        notify: (origin: Origin, text: string) => this.notify(origin, text),
        stopped: this.#stopped.signal,
      },
    };
    const handleMessage = async (event: ChatEvent): Promise<void> => {
      const { message, space, user } = event;
      // Chat sends apps their own and other apps' messages too: only people talk to the agent.
      if (!message || !space || !user || user.type === "BOT") return;
      await handleChatMessage(messages, { ...event, message, space, user } as ChatMessageEvent);
    };
    const interactivity = { ctx, views: this.#views, log };
    const settingsCommand = {
      ctx,
      log,
      sendPrivately: (to: PrivateTarget, body: Parameters<typeof sendPrivately>[2]) =>
        sendPrivately(this.#api, to, body),
    };
    fileLinkRoute(ctx, this.platform);
    eventsReceiver(ctx.routes, {
      verify: chatTokenVerifier(settings.audience, settings.certsUrl),
      ctx,
      log,
      handle: async (event): Promise<ChatResponse> => {
        if (commandIdOf(event) !== undefined)
          return commandIdOf(event) === settings.lobuCommandId
            ? handleSettingsCommand(settingsCommand, event)
            : { text: "⚠️ Unknown command. `/lobu` opens your settings." };
        switch (event.type) {
          case "MESSAGE":
            await handleMessage(event);
            return {};
          case "ADDED_TO_SPACE":
            // Added by a mention: the message that added the app is for the agent too.
            await handleMessage(event);
            return event.message ? {} : welcome(event);
          case "CARD_CLICKED":
            return handleClick(interactivity, event);
          default:
            return {};
        }
      },
    });
    log.info({ path: EVENTS_PATH, audience: settings.audience.mode }, "Google Chat endpoint ready");
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
    await deliverTurn(origin, turn, {
      views: this.#views,
      platform: this.platform,
      log: this.#log,
      background: this.#background,
      ctx: this.#ctx,
      intervalMs: this.#settings.streamIntervalMs,
      // In a space the card is public: its settings link goes to the person privately.
      sendLinkPrivately: (request) => this.#requestLink(origin, request),
      surface: (settingsUrl, messageId) =>
        new GoogleChatSurface(this.#api, origin, {
          settingsUrl,
          messageId,
          state: this.#ctx.state,
          log: this.#log,
        }),
    });
  }

  async notify(origin: Origin, text: string): Promise<void> {
    for (const chunk of toChat(text))
      await gcCall(() =>
        this.#api.spaces.messages.create({
          parent: origin.channelId,
          ...(origin.threadId
            ? { messageReplyOption: "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD" }
            : {}),
          requestBody: {
            text: chunk,
            ...(origin.threadId ? { thread: { name: origin.threadId } } : {}),
          },
        }),
      );
  }

  /** A private message in the space (privateMessageViewer): only the person asked sees the link. */
  async #requestLink(origin: Origin, request: CapabilityRequest): Promise<void> {
    const url = request.url ?? (await this.#ctx.settingsLink(origin));
    await sendPrivately(
      this.#api,
      {
        space: origin.channelId,
        user: `users/${origin.userId}`,
        isDirect: origin.isDirect,
        ...(origin.threadId ? { thread: origin.threadId } : {}),
      },
      {
        text: `The agent asks for ${request.value}. Answer in your settings:`,
        cardsV2: linkCard("lobu-request-link", "Open settings", url),
      },
    );
  }
}
