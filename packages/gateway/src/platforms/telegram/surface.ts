import { bestEffort } from "@lobu/core/best-effort";
import { type Api, GrammyError, InputFile } from "grammy";
import type { InlineKeyboardMarkup } from "grammy/types";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import {
  type ApprovalView,
  approvalNotes,
  approvalView,
  canApprove,
} from "../shared/approval-view.ts";
import { type LiveMessages, renderMessages, sendInputOnce } from "../shared/live-messages.ts";
import { packUnits, renderMarkdown, stripMarkup } from "../shared/markdown.ts";
import { cardMarkdown, type RequestEvent } from "../shared/requests.ts";
import { keepPlainLive, type Part, type ReplySurface } from "../shared/turn-view.ts";
import { TypingHint } from "../shared/typing.ts";
import { tgCall } from "./client.ts";
import { escapeHtml, MESSAGE_LIMIT, telegramHtml, toTelegramHtml, visibleLength } from "./html.ts";
import { cardKeyboard, stopKeyboard } from "./keyboard.ts";

export type TgLive = LiveMessages<number>;

export interface TgCard {
  messageId: number;
  html: string;
}

/**
 * What an approval card shows inline: Telegram counts at most 4096 visible
 * characters per message, heading and notes included. A longer input is cut
 * and sent in full as a document before the card.
 */
export const APPROVAL_INLINE = { maxChars: 3000, maxLines: 60 };

/** Telegram shows "typing…" for about five seconds per sendChatAction. */
const TYPING_EVERY_MS = 4_500;

function isNotModified(err: unknown): boolean {
  return (
    err instanceof GrammyError &&
    err.error_code === 400 &&
    /message is not modified/i.test(err.description)
  );
}

function isParseError(err: unknown): boolean {
  return (
    err instanceof GrammyError &&
    err.error_code === 400 &&
    /can't parse entities|unsupported start tag|can't find end/i.test(err.description)
  );
}

/** The reply's HTML in messages of at most 4096 visible characters. */
export function replyChunks(parts: Part[]): string[] {
  const units = parts.flatMap((p) => renderMarkdown(p.text, telegramHtml));
  return packUnits(units, MESSAGE_LIMIT, visibleLength, telegramHtml);
}

/**
 * One turn in a Telegram chat (or forum topic): "typing…" while the agent
 * works, the reply streamed by editing its message(s), cards with inline
 * keyboards. HTML that Telegram refuses is sent again as plain text.
 */
export class TelegramSurface implements ReplySurface<TgLive, TgCard> {
  /** Its messages are taken over by the gateway re-running a dead gateway's turn (turn-view.ts). */
  readonly keep = keepPlainLive<TgLive>("ids", "number");
  readonly #api: Api;
  readonly #chatId: number;
  readonly #threadId: number | undefined;
  readonly #replyTo: number | undefined;
  readonly #state: AdapterContext["state"];
  readonly #settingsUrl: () => Promise<string | undefined>;
  readonly #log: Logger;
  /** The turn's message: the streaming reply's Stop buttons name it. */
  readonly #messageId: string | undefined;
  readonly #typing: TypingHint;
  /** Approval inputs already sent as documents, by file name. */
  readonly #attachedInputs = new Map<string, "file">();
  #replied = false;

  constructor(
    api: Api,
    origin: Origin,
    opts: {
      state: AdapterContext["state"];
      settingsUrl: () => Promise<string | undefined>;
      log: Logger;
      /** Show Stop buttons on the streaming reply for this message's turn. */
      messageId?: string;
    },
  ) {
    this.#api = api;
    this.#chatId = Number(origin.channelId);
    this.#threadId = origin.threadId ? Number(origin.threadId) : undefined;
    // In groups the first reply quotes the question, so it is clear whom the bot answers.
    this.#replyTo = !origin.isDirect && origin.messageRef ? Number(origin.messageRef) : undefined;
    this.#state = opts.state;
    this.#settingsUrl = opts.settingsUrl;
    this.#log = opts.log;
    this.#messageId = opts.messageId;
    this.#typing = new TypingHint({
      everyMs: TYPING_EVERY_MS,
      send: () =>
        this.#api.sendChatAction(
          this.#chatId,
          "typing",
          this.#threadId !== undefined ? { message_thread_id: this.#threadId } : {},
        ),
      log: this.#log,
      failure: "sendChatAction failed",
    });
  }

  async begin(): Promise<undefined> {
    return undefined;
  }

  async render(handle: TgLive | undefined, parts: Part[], final: boolean): Promise<TgLive> {
    // While the reply streams, its last message carries the Stop buttons; the final edit drops them.
    const stop = !final && this.#messageId ? stopKeyboard(this.#messageId) : undefined;
    return renderMessages(handle, replyChunks(parts), stop, {
      send: (html, keyboard) => this.#send(html, keyboard),
      edit: (id, html, keyboard) => this.#edit(id, html, keyboard),
      remove: (id) =>
        tgCall(() => this.#api.deleteMessage(this.#chatId, id)).then(
          () => undefined,
          (err) => this.#log.debug({ err }, "could not delete a message"),
        ),
    });
  }

  async discard(handle: TgLive): Promise<void> {
    for (const id of handle.ids)
      await tgCall(() => this.#api.deleteMessage(this.#chatId, id)).catch(
        bestEffort(this.#log, "discarded message not deleted: it stays in the chat", {
          messageId: id,
        }),
      );
  }

  async postCard(event: RequestEvent): Promise<TgCard> {
    let html = toTelegramHtml(cardMarkdown(event))[0] ?? "…";
    let approvable = true;
    if (event.type === "approval_request") {
      // The input verbatim in <pre>; too long for one message, the full text goes first as a file.
      const view = approvalView(event, APPROVAL_INLINE);
      const attached = view.cut && (await this.#attachInput(view, event.tool));
      approvable = canApprove(view, attached);
      const notes = approvalNotes(view, attached).map((n) => toTelegramHtml(n)[0] ?? "");
      html = [html, `<pre>${escapeHtml(view.shown || " ")}</pre>`, ...notes].join("\n\n");
    }
    const url =
      event.type === "capability_request" ? (event.url ?? (await this.#settingsUrl())) : undefined;
    const keyboard = await cardKeyboard(event, url, this.#state, approvable);
    const messageId = await this.#send(html, keyboard);
    return { messageId, html };
  }

  /** Send an approval's full input as a document (once); false when Telegram refused it. */
  async #attachInput(view: ApprovalView, tool: string): Promise<boolean> {
    const how = await sendInputOnce(this.#attachedInputs, view.fileName, this.#log, async () => {
      await tgCall(() =>
        this.#api.sendDocument(
          this.#chatId,
          new InputFile(Buffer.from(view.full, "utf8"), view.fileName),
          {
            caption: `Full input of the ${tool} call waiting for your approval`,
            ...(this.#threadId !== undefined ? { message_thread_id: this.#threadId } : {}),
          },
        ),
      );
      return "file" as const;
    });
    return how !== "none";
  }

  async closeCard(card: TgCard, _event: RequestEvent, line: string): Promise<void> {
    // Without reply_markup the edit removes the keyboard.
    await this.#edit(card.messageId, `${card.html}\n\n${toTelegramHtml(line)[0] ?? ""}`);
  }

  working(on: boolean): void {
    this.#typing.set(on);
  }

  async #send(html: string, keyboard?: InlineKeyboardMarkup): Promise<number> {
    const replyTo = this.#replied ? undefined : this.#replyTo;
    const base = {
      link_preview_options: { is_disabled: true },
      ...(this.#threadId !== undefined ? { message_thread_id: this.#threadId } : {}),
      ...(replyTo !== undefined
        ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } }
        : {}),
      ...(keyboard ? { reply_markup: keyboard } : {}),
    };
    let sent: { message_id: number };
    try {
      sent = await tgCall(() =>
        this.#api.sendMessage(this.#chatId, html, { ...base, parse_mode: "HTML" }),
      );
    } catch (err) {
      if (!isParseError(err)) throw err;
      this.#log.warn({ err }, "Telegram refused the formatting; sending plain text");
      sent = await tgCall(() => this.#api.sendMessage(this.#chatId, plain(html), base));
    }
    this.#replied = true;
    return sent.message_id;
  }

  async #edit(messageId: number, html: string, keyboard?: InlineKeyboardMarkup): Promise<void> {
    // Without reply_markup the edit removes the keyboard.
    const opts = {
      link_preview_options: { is_disabled: true },
      ...(keyboard ? { reply_markup: keyboard } : {}),
    };
    try {
      await tgCall(() =>
        this.#api.editMessageText(this.#chatId, messageId, html, { ...opts, parse_mode: "HTML" }),
      );
    } catch (err) {
      if (isNotModified(err)) return;
      if (!isParseError(err)) throw err;
      this.#log.warn({ err }, "Telegram refused the formatting; editing as plain text");
      await tgCall(() =>
        this.#api.editMessageText(this.#chatId, messageId, plain(html), opts),
      ).catch((e) => {
        if (!isNotModified(e)) throw e;
      });
    }
  }
}

/** The visible text of our HTML, within Telegram's limit. */
function plain(html: string): string {
  const text = stripMarkup(html).trim() || "…";
  return text.length > MESSAGE_LIMIT ? `${text.slice(0, MESSAGE_LIMIT - 1)}…` : text;
}
