import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import {
  type ApprovalView,
  approvalNotes,
  approvalView,
  canApprove,
} from "../shared/approval-view.ts";
import { sendInputOnce } from "../shared/live-messages.ts";
import { cardButtons, cardMarkdown, type RequestEvent } from "../shared/requests.ts";
import type { Part, ReplySurface } from "../shared/turn-view.ts";
import { type GraphClient, waCall } from "./client.ts";
import { replyChunks, toWhatsAppText, whatsappText } from "./format.ts";
import {
  BODY_LIMIT,
  choicesMessage,
  documentMessage,
  TEXT_LIMIT,
  textMessage,
} from "./payloads.ts";
import { replyId } from "./reply-ids.ts";
import type { WindowedSender } from "./sender.ts";

/** The reply's messages sent so far (WhatsApp cannot edit or delete them). */
export interface WaLive {
  shown: string[];
}

export interface WaCard {
  /** The card's message id ("" when it could not be sent: the window was closed). */
  messageId: string;
}

/**
 * What an approval card shows inline: an interactive message's body holds
 * 1024 characters, heading and notes included. A longer input goes first as
 * a text message of its own (up to 4096 characters), or as a document.
 */
export const APPROVAL_INLINE = { maxChars: 600, maxLines: 25 };

/** WhatsApp shows "typing…" for at most 25 seconds per request. */
const TYPING_EVERY_MS = 20_000;

/**
 * One turn in a WhatsApp chat. WhatsApp cannot edit messages, so nothing
 * streams: the person sees the read receipt and "typing…" while the agent
 * works, then the final text (split at 4096 characters). Requests are reply
 * buttons (≤ 3 short labels) or a list (≤ 10 rows); an answered card cannot
 * lose its buttons, so the outcome follows as a reply to it.
 */
export class WhatsAppSurface implements ReplySurface<WaLive, WaCard> {
  readonly #graph: GraphClient;
  readonly #sender: WindowedSender;
  readonly #origin: Origin;
  readonly #state: AdapterContext["state"];
  readonly #settingsUrl: () => Promise<string | undefined>;
  readonly #log: Logger;
  #typing: NodeJS.Timeout | undefined;
  /** Approval inputs already sent, by file name, and how (a retried card sends none twice). */
  readonly #attached = new Map<string, "message" | "file">();
  /** A live message whose first render failed part-way: the next render goes on from it. */
  #unreturned: WaLive | undefined;

  constructor(opts: {
    graph: GraphClient;
    sender: WindowedSender;
    origin: Origin;
    state: AdapterContext["state"];
    settingsUrl: () => Promise<string | undefined>;
    log: Logger;
  }) {
    this.#graph = opts.graph;
    this.#sender = opts.sender;
    this.#origin = opts.origin;
    this.#state = opts.state;
    this.#settingsUrl = opts.settingsUrl;
    this.#log = opts.log;
  }

  async begin(): Promise<undefined> {
    return undefined;
  }

  /**
   * Only the final render sends (WhatsApp has no edits). Each message sent
   * is recorded in the handle as it goes, so a render that a rate limit cut
   * short continues where it stopped instead of sending a part twice.
   */
  async render(handle: WaLive | undefined, parts: Part[], final: boolean): Promise<WaLive> {
    const live = handle ?? this.#unreturned ?? { shown: [] };
    this.#unreturned = live;
    if (final) {
      for (const [i, text] of replyChunks(parts).entries()) {
        if (live.shown[i] === text) continue;
        await this.#sender.send(textMessage(this.#origin.userId, text));
        live.shown[i] = text;
      }
    }
    this.#unreturned = undefined;
    return live;
  }

  /** Sent messages stay: the Cloud API deletes nothing a business sent. */
  async discard(_handle: WaLive): Promise<void> {}

  async postCard(event: RequestEvent): Promise<WaCard> {
    const to = this.#origin.userId;
    let body = toWhatsAppText(cardMarkdown(event), BODY_LIMIT)[0] ?? "…";
    let approvable = true;
    if (event.type === "approval_request") {
      const view = approvalView(event, APPROVAL_INLINE);
      // Too long for the card: the whole input goes first, as a message of its own or as a file.
      const attached = view.cut ? await this.#sendFullInput(view, event.tool) : "none";
      approvable = canApprove(view, attached !== "none");
      const notes = approvalNotes(view, attached !== "none").map((n) => toWhatsAppText(n)[0] ?? "");
      body = [body, whatsappText.codeBlock(view.shown), ...notes].join("\n\n");
      if (attached === "message")
        body = body.replace(/attached above as `approval-[^`]+\.txt`/, "in the message above");
    }
    if (event.type === "capability_request") {
      const url = event.url ?? (await this.#settingsUrl());
      if (url) body = `${body}\n\nOpen your settings: ${url}`;
    }
    const choices = await Promise.all(
      cardButtons(event, approvable).map(async (b) => ({
        id: await replyId(event.requestId, b.choice, this.#state),
        label: b.label,
      })),
    );
    const outcome = await this.#sender.send(choicesMessage(to, body, choices));
    return { messageId: outcome.sent ? outcome.id : "" };
  }

  /**
   * An approval's whole input, before its card: a text message when it fits
   * in one (readable in the chat), else a document. "none" when it could not
   * be sent; the card then offers Deny only.
   */
  #sendFullInput(view: ApprovalView, tool: string): Promise<"message" | "file" | "none"> {
    return sendInputOnce(this.#attached, view.fileName, this.#log, async () => {
      const to = this.#origin.userId;
      const text = `Full input waiting for your approval:\n\n${whatsappText.codeBlock(view.full)}`;
      if (text.length <= TEXT_LIMIT) {
        return (await this.#sender.send(textMessage(to, text))).sent ? "message" : "none";
      }
      const mediaId = await waCall(() =>
        this.#graph.uploadMedia({
          data: Buffer.from(view.full, "utf8"),
          filename: view.fileName,
          mimeType: "text/plain",
        }),
      );
      const caption = `Full input of the ${tool} call waiting for your approval`;
      const sent = await this.#sender.send(documentMessage(to, mediaId, view.fileName, caption));
      return sent.sent ? "file" : "none";
    });
  }

  async closeCard(card: WaCard, _event: RequestEvent, line: string): Promise<void> {
    const text = toWhatsAppText(line)[0] ?? line;
    await this.#sender.send(textMessage(this.#origin.userId, text, card.messageId || undefined));
  }

  working(on: boolean): void {
    if (!on) {
      if (this.#typing) clearInterval(this.#typing);
      this.#typing = undefined;
      return;
    }
    const messageId = this.#origin.messageRef;
    if (this.#typing || !messageId) return;
    const typing = () => {
      this.#graph
        .markRead(messageId, true)
        .catch((err) => this.#log.debug({ err }, "WhatsApp typing indicator failed"));
    };
    typing();
    this.#typing = setInterval(typing, TYPING_EVERY_MS);
    this.#typing.unref();
  }
}
