import type { Logger } from "pino";
import type { AdapterContext } from "../shared/adapter.ts";
import { GraphApiError, type GraphClient, WINDOW_CLOSED_CODE, waCall } from "./client.ts";
import type { WhatsAppSettings } from "./config.ts";
import { type OutboundMessage, templateMessage } from "./payloads.ts";
import type { ServiceWindow } from "./window.ts";

/** What became of a message: sent (its id), or held back because the 24-hour window is closed. */
export type SendOutcome = { sent: true; id: string } | { sent: false };

export interface SenderDeps {
  graph: GraphClient;
  window: ServiceWindow;
  settings: Pick<WhatsAppSettings, "windowTemplate">;
  ctx: Pick<AdapterContext, "audit">;
  log: Logger;
}

/**
 * Sends free-form messages to one person within the customer-service window.
 * Outside it (the adapter's record of the person's last message says so, or
 * the Cloud API refuses with 131047) nothing free-form is sent: the
 * configured template goes once instead, or, without one, the operator is
 * told in the log and the audit log why the person got no reply. Rate
 * limits surface as RetryLater (shared pacing), for the caller to wait out.
 */
export class WindowedSender {
  readonly #deps: SenderDeps;
  readonly #to: string;
  #closedHandled = false;

  constructor(deps: SenderDeps, to: string) {
    this.#deps = deps;
    this.#to = to;
  }

  async send(message: OutboundMessage): Promise<SendOutcome> {
    if (!(await this.#deps.window.isOpen(this.#to))) return this.#outsideWindow("tracked");
    try {
      return { sent: true, id: await waCall(() => this.#deps.graph.send(message)) };
    } catch (err) {
      if (err instanceof GraphApiError && err.code === WINDOW_CLOSED_CODE)
        return this.#outsideWindow("refused by WhatsApp");
      throw err;
    }
  }

  async #outsideWindow(how: string): Promise<SendOutcome> {
    if (this.#closedHandled) return { sent: false };
    this.#closedHandled = true;
    const { settings, log, ctx } = this.#deps;
    const template = settings.windowTemplate;
    ctx.audit("window_closed", { how, template: template?.name ?? null });
    if (!template) {
      log.warn(
        { how },
        "WhatsApp: a reply was not sent, the person's last message is more than 24 hours old (WhatsApp then accepts only templates); set window_template in [platforms.whatsapp] to send one instead. The reply is kept in the conversation's history",
      );
      return { sent: false };
    }
    const id = await waCall(() => this.#deps.graph.send(templateMessage(this.#to, template)));
    log.info(
      { how, template: template.name },
      "WhatsApp: outside the 24-hour window; sent the template instead of the reply",
    );
    return { sent: true, id };
  }
}
