import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import {
  type ApprovalView,
  approvalNotes,
  approvalView,
  canApprove,
} from "../shared/approval-view.ts";
import { RetryLater } from "../shared/pacing.ts";
import { cardMarkdown, type RequestEvent } from "../shared/requests.ts";
import { keepPlainLive, type Part, type ReplySurface } from "../shared/turn-view.ts";
import type { CardStore } from "./card-store.ts";
import { attachmentOf, closedCard, requestCard, stopCard, textBlock } from "./cards.ts";
import { type ActivityOut, type ConnectorClient, teamsCall } from "./client.ts";
import type { ConversationRef } from "./conversations.ts";
import { cardText, MESSAGE_LIMIT, replyChunks, teamsMarkdown } from "./format.ts";

export interface TmLive {
  ids: string[];
  /** What each message shows, for comparing: its text, and whether it carries the Stop actions. */
  shown: string[];
}

const shownAs = (text: string, stop: boolean) => (stop ? `${text}\u0000stop` : text);

export interface TmCard {
  activityId: string;
  body: unknown[];
}

/** What an approval card shows inline; the whole input goes before it when it is longer. */
export const APPROVAL_INLINE = { maxChars: 6000, maxLines: 120 };
/** An approval's full input is sent in at most this many messages before its card. */
const FULL_INPUT_MESSAGES = 5;
/** Teams shows "typing…" for a few seconds per typing activity. */
const TYPING_EVERY_MS = 3_000;

/**
 * One turn in a Teams conversation (1:1, group chat, channel thread):
 * "typing…" while the agent works, the reply streamed by updating its
 * message(s), Adaptive Cards for requests. Every message replies to the
 * person's activity, so in a channel it stays in the thread.
 */
export class TeamsSurface implements ReplySurface<TmLive, TmCard> {
  /** Its messages are taken over by the gateway re-running a dead gateway's turn (turn-view.ts). */
  readonly keep = keepPlainLive<TmLive>("ids", "string");
  readonly #client: ConnectorClient;
  readonly #ref: ConversationRef;
  readonly #origin: Origin;
  readonly #cards: CardStore;
  readonly #settingsUrl: () => Promise<string | undefined>;
  readonly #log: Logger;
  /** The turn's message: the streaming reply's Stop actions name it. */
  readonly #messageId: string | undefined;
  #typing: NodeJS.Timeout | undefined;
  readonly #attached = new Set<string>();

  constructor(opts: {
    client: ConnectorClient;
    ref: ConversationRef;
    origin: Origin;
    cards: CardStore;
    settingsUrl: () => Promise<string | undefined>;
    log: Logger;
    /** Show Stop actions on the streaming reply for this message's turn. */
    messageId?: string;
  }) {
    this.#client = opts.client;
    this.#ref = opts.ref;
    this.#origin = opts.origin;
    this.#cards = opts.cards;
    this.#settingsUrl = opts.settingsUrl;
    this.#log = opts.log;
    this.#messageId = opts.messageId;
  }

  async begin(): Promise<undefined> {
    return undefined;
  }

  async render(handle: TmLive | undefined, parts: Part[], final: boolean): Promise<TmLive> {
    const chunks = replyChunks(parts);
    const live: TmLive = handle
      ? { ids: [...handle.ids], shown: [...handle.shown] }
      : { ids: [], shown: [] };
    // While the reply streams, its last message carries the Stop actions; the final update drops them.
    const stop = !final && this.#messageId ? [attachmentOf(stopCard(this.#messageId))] : undefined;
    for (const [i, text] of chunks.entries()) {
      const id = live.ids[i];
      const attachments = i === chunks.length - 1 ? stop : undefined;
      const shown = shownAs(text, attachments !== undefined);
      const activity: ActivityOut = {
        type: "message",
        text,
        textFormat: "markdown",
        ...(attachments ? { attachments } : {}),
      };
      if (id === undefined) {
        live.ids.push(await this.#send(activity));
        live.shown.push(shown);
      } else if (live.shown[i] !== shown) {
        await this.#update(id, activity);
        live.shown[i] = shown;
      }
    }
    for (const id of live.ids.splice(chunks.length)) await this.#delete(id);
    live.shown.length = live.ids.length;
    return live;
  }

  async discard(handle: TmLive): Promise<void> {
    for (const id of handle.ids) await this.#delete(id);
  }

  async postCard(event: RequestEvent): Promise<TmCard> {
    const body: unknown[] = [textBlock(cardText(cardMarkdown(event)))];
    let approvable = true;
    if (event.type === "approval_request") {
      const view = approvalView(event, APPROVAL_INLINE);
      const attached = view.cut ? await this.#sendFullInput(view) : false;
      approvable = canApprove(view, attached);
      body.push(textBlock(view.shown, { fontType: "Monospace" }));
      for (const note of approvalNotes(view, attached))
        body.push(
          textBlock(cardText(note).replace(/attached above as \S+/, "in the messages above"), {
            isSubtle: true,
          }),
        );
    }
    const url =
      event.type === "capability_request" ? (event.url ?? (await this.#settingsUrl())) : undefined;
    const content = requestCard(event, body, url, approvable);
    const activityId = await this.#send({ type: "message", attachments: [attachmentOf(content)] });
    const shown = { activityId, body };
    await this.#cards.remember(event.requestId, shown);
    return shown;
  }

  /** An approval's whole input, in messages before its card; false when it could not be sent. */
  async #sendFullInput(view: ApprovalView): Promise<boolean> {
    if (this.#attached.has(view.fileName)) return true;
    const chunks = replyChunks([
      {
        kind: "text",
        text: `Full input waiting for your approval:\n\n${teamsMarkdown.codeBlock(view.full)}`,
      },
    ]);
    if (chunks.length > FULL_INPUT_MESSAGES) return false;
    try {
      for (const text of chunks)
        await this.#send({
          type: "message",
          text: text.slice(0, MESSAGE_LIMIT),
          textFormat: "markdown",
        });
    } catch (err) {
      if (err instanceof RetryLater) throw err;
      this.#log.warn({ err }, "could not send an approval's full input: only Deny is offered");
      return false;
    }
    this.#attached.add(view.fileName);
    return true;
  }

  async closeCard(card: TmCard, _event: RequestEvent, line: string): Promise<void> {
    await this.#update(card.activityId, {
      type: "message",
      attachments: [attachmentOf(closedCard(card.body, cardText(line)))],
    });
  }

  working(on: boolean): void {
    if (!on) {
      if (this.#typing) clearInterval(this.#typing);
      this.#typing = undefined;
      return;
    }
    if (this.#typing) return;
    const typing = () => {
      this.#client
        .send(this.#ref.serviceUrl, this.#origin.channelId, { type: "typing" })
        .catch((err) => this.#log.debug({ err }, "Teams typing indicator failed"));
    };
    typing();
    this.#typing = setInterval(typing, TYPING_EVERY_MS);
    this.#typing.unref();
  }

  #send(activity: ActivityOut): Promise<string> {
    const replyToId = this.#origin.messageRef;
    return teamsCall(() =>
      this.#client.send(this.#ref.serviceUrl, this.#origin.channelId, {
        ...activity,
        ...(replyToId ? { replyToId } : {}),
      }),
    );
  }

  #update(id: string, activity: ActivityOut): Promise<void> {
    return teamsCall(() =>
      this.#client.update(this.#ref.serviceUrl, this.#origin.channelId, id, activity),
    );
  }

  async #delete(id: string): Promise<void> {
    await teamsCall(() =>
      this.#client.remove(this.#ref.serviceUrl, this.#origin.channelId, id),
    ).catch((err) => this.#log.debug({ err }, "could not delete a Teams message"));
  }
}
