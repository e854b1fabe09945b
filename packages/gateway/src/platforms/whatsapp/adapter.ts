import { type AgentEvent, registerSecret } from "@lobu/core";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext, PlatformAdapter } from "../shared/adapter.ts";
import { Background } from "../shared/background.ts";
import { deliverTurn } from "../shared/deliver.ts";
import { TurnViews } from "../shared/turn-view.ts";
import { GraphClient } from "./client.ts";
import { sendRequestLink } from "./commands.ts";
import type { WhatsAppSettings } from "./config.ts";
import { WhatsAppFiles } from "./files.ts";
import { toWhatsAppText } from "./format.ts";
import { handleClick } from "./interactivity.ts";
import { handleMessage } from "./messages.ts";
import { textMessage } from "./payloads.ts";
import { WindowedSender } from "./sender.ts";
import { type WaCard, type WaLive, WhatsAppSurface } from "./surface.ts";
import type { WaInbound } from "./webhook/parse.ts";
import { WHATSAPP_WEBHOOK_ACK, webhookReceiver } from "./webhook/receiver.ts";
import { ServiceWindow } from "./window.ts";

/** No edits on WhatsApp: the interval only paces the (silent) intermediate renders. */
const RENDER_INTERVAL_MS = 1_000;

/**
 * WhatsApp (Cloud API): a signed webhook, one private chat per person with
 * the business number, final replies (no edits) with the typing indicator
 * meanwhile, reply buttons and lists for requests, and the 24-hour
 * customer-service window. This class only wires the parts: the receiver
 * (webhook/receiver.ts) hands each message once to messages.ts or
 * interactivity.ts; replies render on surface.ts through a WindowedSender.
 */
export class WhatsAppAdapter implements PlatformAdapter {
  readonly platform = "whatsapp";
  /** Media in, files out. */
  readonly files: WhatsAppFiles;
  readonly #settings: WhatsAppSettings;
  readonly #graph: GraphClient;
  readonly #views = new TurnViews<WaLive, WaCard>();
  readonly #stopped = new AbortController();
  #ctx!: AdapterContext;
  #log!: Logger;
  #background!: Background;
  #window!: ServiceWindow;

  constructor(settings: WhatsAppSettings) {
    // Whatever logs them by mistake (an error echoing a request) shows [REDACTED] instead.
    for (const secret of [settings.accessToken, settings.appSecret, settings.verifyToken])
      registerSecret(secret);
    this.#settings = settings;
    this.#graph = new GraphClient(settings);
    this.files = new WhatsAppFiles({
      graph: this.#graph,
      apiRoot: settings.apiRoot,
      sender: (to) => this.#sender(to),
    });
  }

  async start(ctx: AdapterContext): Promise<void> {
    const settings = this.#settings;
    this.#ctx = ctx;
    const log = ctx.log;
    this.#log = log;
    const background = new Background(log);
    this.#background = background;
    this.#window = new ServiceWindow(ctx.state, log);
    const sender = (to: string) => this.#sender(to);
    const inbound = {
      ctx,
      policy: WHATSAPP_WEBHOOK_ACK,
      log,
      background,
      notify: (origin: Origin, text: string) => this.notify(origin, text),
      stopped: this.#stopped.signal,
    };
    const phoneNumberId = settings.phoneNumberId;
    const handle = async (item: WaInbound) => {
      // Every message the person sends opens (or extends) the 24-hour window.
      await this.#window.opened(item.from, Number(item.message.timestamp) * 1000);
      if (item.kind === "click") {
        await handleClick(
          { ctx, views: this.#views, phoneNumberId, background, log, sender },
          item,
        );
        return;
      }
      await handleMessage(
        { phoneNumberId, agentId: settings.agentId, ctx, inbound, background, log, sender },
        item,
      );
    };
    webhookReceiver(ctx.routes, {
      appSecret: settings.appSecret,
      verifyToken: settings.verifyToken,
      phoneNumberId,
      ctx,
      log,
      handle,
    });
    log.info({ phoneNumberId }, "WhatsApp webhook ready at /whatsapp/webhook");
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
    const sender = this.#sender(origin.userId);
    await deliverTurn(origin, turn, {
      views: this.#views,
      platform: this.platform,
      log: this.#log,
      background: this.#background,
      ctx: this.#ctx,
      intervalMs: RENDER_INTERVAL_MS,
      // Every WhatsApp chat is private; this is only reached for an origin marked otherwise.
      sendLinkPrivately: (request) => sendRequestLink({ ctx: this.#ctx, sender }, origin, request),
      surface: (settingsUrl) =>
        new WhatsAppSurface({
          graph: this.#graph,
          sender,
          origin,
          state: this.#ctx.state,
          settingsUrl,
          log: this.#log,
        }),
    });
  }

  async notify(origin: Origin, text: string): Promise<void> {
    const sender = this.#sender(origin.userId);
    for (const chunk of toWhatsAppText(text)) await sender.send(textMessage(origin.userId, chunk));
  }

  #sender(to: string): WindowedSender {
    return new WindowedSender(
      {
        graph: this.#graph,
        window: this.#window,
        settings: this.#settings,
        ctx: this.#ctx,
        log: this.#log,
      },
      to,
    );
  }
}
