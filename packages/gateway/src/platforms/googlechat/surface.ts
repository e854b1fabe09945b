import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { approvalNotes, approvalView, canApprove } from "../shared/approval-view.ts";
import { renderMessages } from "../shared/live-messages.ts";
import { RetryLater } from "../shared/pacing.ts";
import { cardMarkdown, type RequestEvent } from "../shared/requests.ts";
import { keepPlainLive, type Part, type ReplySurface } from "../shared/turn-view.ts";
import { type CardV2, dialogInputKey, requestCard, stopCard } from "./cards.ts";
import { type ChatApi, gcCall } from "./client.ts";
import { chatMarkdown, MESSAGE_LIMIT, replyChunks, toChat } from "./format.ts";

export interface GcLive {
  names: string[];
  /** What each message shows, for comparing: its text, and whether it carries the Stop buttons. */
  shown: string[];
}

export interface GcCard {
  name: string;
  text: string;
}

/** What an approval card shows inline (4,096 characters per message, heading and notes included). */
export const APPROVAL_INLINE = { maxChars: 2500, maxLines: 60 };

/** The most of an approval's input a dialog shows (a card's text stays well under Chat's 32 KB). */
const DIALOG_LIMIT = 24_000;
const DIALOG_INPUT_TTL_MS = 2 * 86_400_000;

/**
 * One turn in a Google Chat space, thread or DM, through the Chat API: the
 * reply streamed by editing its message(s) (spaces.messages.update), request
 * cards as Cards v2 under the card's text. In a space every message goes to
 * the person's thread. Chat shows apps no typing indicator.
 */
export class GoogleChatSurface implements ReplySurface<GcLive, GcCard> {
  /** Its messages are taken over by the gateway re-running a dead gateway's turn (turn-view.ts). */
  readonly keep = keepPlainLive<GcLive>("names", "string");
  readonly #api: ChatApi;
  readonly #origin: Origin;
  readonly #settingsUrl: () => Promise<string | undefined>;
  readonly #state: AdapterContext["state"];
  readonly #log: Logger;
  /** Whether an approval's full input went out as a message of its own, by request (a retried card sends it once). */
  readonly #attached = new Map<string, boolean>();
  /** The turn's message: the streaming reply's Stop buttons name it. */
  readonly #messageId: string | undefined;

  constructor(
    api: ChatApi,
    origin: Origin,
    opts: {
      settingsUrl: () => Promise<string | undefined>;
      state: AdapterContext["state"];
      log: Logger;
      /** Show Stop buttons on the streaming reply for this message's turn. */
      messageId?: string;
    },
  ) {
    this.#api = api;
    this.#origin = origin;
    this.#settingsUrl = opts.settingsUrl;
    this.#state = opts.state;
    this.#log = opts.log;
    this.#messageId = opts.messageId;
  }

  async begin(): Promise<undefined> {
    return undefined;
  }

  async render(handle: GcLive | undefined, parts: Part[], final: boolean): Promise<GcLive> {
    // While the reply streams, its last message carries the Stop buttons; the final update drops them.
    const stop = !final && this.#messageId ? stopCard(this.#messageId) : undefined;
    // Chat's message ids are resource names: kept as `names`, which other gateways read.
    const before = handle && { ids: handle.names, shown: handle.shown };
    const live = await renderMessages(before, replyChunks(parts), stop, {
      send: (text, cardsV2) => this.#send(text, cardsV2),
      edit: async (name, text, cardsV2) => {
        await gcCall(() =>
          this.#api.spaces.messages.update({
            name,
            updateMask: "text,cardsV2",
            requestBody: { text, cardsV2: cardsV2 ?? [] },
          }),
        );
      },
      remove: (name) => this.#delete(name),
    });
    return { names: live.ids, shown: live.shown };
  }

  async discard(handle: GcLive): Promise<void> {
    for (const name of handle.names) await this.#delete(name);
  }

  async postCard(event: RequestEvent): Promise<GcCard> {
    let text = toChat(cardMarkdown(event))[0] ?? "…";
    let approvable = true;
    let showInput = false;
    if (event.type === "approval_request") {
      const view = approvalView(event, APPROVAL_INLINE);
      // Too long for the card: the whole input goes first as a message of its own when it fits
      // one, else behind a "Show full input" button that opens it in a dialog.
      let attached = view.cut ? await this.#sendFullInput(event.requestId, view.full) : false;
      if (view.cut && !attached)
        attached = showInput = await this.#keepForDialog(event.requestId, view.full);
      approvable = canApprove(view, attached);
      const where = showInput ? "behind **Show full input** below" : "in the message above";
      const notes = approvalNotes(view, attached).map((n) =>
        (toChat(n)[0] ?? "").replace(
          /attached above as `approval-[^`]+\.txt`/,
          toChat(where)[0] ?? where,
        ),
      );
      text = [text, chatMarkdown.codeBlock(view.shown), ...notes]
        .join("\n\n")
        .slice(0, MESSAGE_LIMIT);
    }
    const url =
      event.type === "capability_request" ? (event.url ?? (await this.#settingsUrl())) : undefined;
    const name = await this.#send(text, requestCard(event, url, approvable, showInput));
    return { name, text };
  }

  async #sendFullInput(requestId: string, full: string): Promise<boolean> {
    const already = this.#attached.get(requestId);
    if (already !== undefined) return already;
    const text = `Full input waiting for your approval:\n${chatMarkdown.codeBlock(full)}`;
    let sent = false;
    if (text.length <= MESSAGE_LIMIT) {
      try {
        await this.#send(text);
        sent = true;
      } catch (err) {
        if (err instanceof RetryLater) throw err;
        this.#log.warn({ err }, "could not send an approval's full input: only Deny is offered");
      }
    }
    this.#attached.set(requestId, sent);
    return sent;
  }

  /** The input a dialog shows, kept for this space while the request can be answered. */
  async #keepForDialog(requestId: string, full: string): Promise<boolean> {
    if (full.length > DIALOG_LIMIT) return false;
    try {
      await this.#state.set(
        dialogInputKey(requestId),
        JSON.stringify({ space: this.#origin.channelId, text: full }),
        DIALOG_INPUT_TTL_MS,
      );
      return true;
    } catch (err) {
      this.#log.warn(
        { err },
        "could not keep an approval's input for its dialog: only Deny is offered",
      );
      return false;
    }
  }

  async closeCard(card: GcCard, _event: RequestEvent, line: string): Promise<void> {
    const text = `${card.text}\n\n${toChat(line)[0] ?? ""}`.slice(0, MESSAGE_LIMIT);
    await gcCall(() =>
      this.#api.spaces.messages.update({
        name: card.name,
        updateMask: "text,cardsV2",
        requestBody: { text, cardsV2: [] },
      }),
    );
  }

  working(_on: boolean): void {}

  async #send(text: string, cardsV2?: CardV2[]): Promise<string> {
    const thread = this.#origin.threadId;
    const sent = await gcCall(() =>
      this.#api.spaces.messages.create({
        parent: this.#origin.channelId,
        ...(thread ? { messageReplyOption: "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD" } : {}),
        requestBody: {
          text,
          ...(cardsV2 ? { cardsV2 } : {}),
          ...(thread ? { thread: { name: thread } } : {}),
        },
      }),
    );
    if (!sent.data.name) throw new Error("the Chat API answered without a message name");
    return sent.data.name;
  }

  async #delete(name: string): Promise<void> {
    await gcCall(() => this.#api.spaces.messages.delete({ name })).catch((err) =>
      this.#log.debug({ err }, "could not delete a Google Chat message"),
    );
  }
}
