import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import {
  type ApprovalView,
  approvalNotes,
  approvalView,
  canApprove,
} from "../shared/approval-view.ts";
import { type LiveMessages, renderMessages, sendInputOnce } from "../shared/live-messages.ts";
import { cardMarkdown, type RequestEvent } from "../shared/requests.ts";
import { keepPlainLive, type Part, type ReplySurface } from "../shared/turn-view.ts";
import { TypingHint } from "../shared/typing.ts";
import type { CardStore } from "./card-store.ts";
import { attachmentOf, closedCard, requestCard, stopCard, textBlock } from "./cards.ts";
import { type ActivityOut, type ConnectorClient, teamsCall } from "./client.ts";
import type { ConversationRef } from "./conversations.ts";
import { cardText, MESSAGE_LIMIT, replyChunks, teamsMarkdown } from "./format.ts";

export type TmLive = LiveMessages<string>;

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
  readonly #typing: TypingHint;
  readonly #attached = new Map<string, "message">();

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
    this.#typing = new TypingHint({
      everyMs: TYPING_EVERY_MS,
      send: () =>
        this.#client.send(this.#ref.serviceUrl, this.#origin.channelId, { type: "typing" }),
      log: this.#log,
      failure: "Teams typing indicator failed",
    });
  }

  async begin(): Promise<undefined> {
    return undefined;
  }

  async render(handle: TmLive | undefined, parts: Part[], final: boolean): Promise<TmLive> {
    // While the reply streams, its last message carries the Stop actions; the final update drops them.
    const stop = !final && this.#messageId ? [attachmentOf(stopCard(this.#messageId))] : undefined;
    const activity = (text: string, attachments: ActivityOut["attachments"]): ActivityOut => ({
      type: "message",
      text,
      textFormat: "markdown",
      ...(attachments ? { attachments } : {}),
    });
    return renderMessages(handle, replyChunks(parts), stop, {
      send: (text, attachments) => this.#send(activity(text, attachments)),
      edit: (id, text, attachments) => this.#update(id, activity(text, attachments)),
      remove: (id) => this.#delete(id),
    });
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
    const how = await sendInputOnce(this.#attached, view.fileName, this.#log, async () => {
      const chunks = replyChunks([
        {
          kind: "text",
          text: `Full input waiting for your approval:\n\n${teamsMarkdown.codeBlock(view.full)}`,
        },
      ]);
      if (chunks.length > FULL_INPUT_MESSAGES) return "none";
      for (const text of chunks)
        await this.#send({
          type: "message",
          text: text.slice(0, MESSAGE_LIMIT),
          textFormat: "markdown",
        });
      return "message" as const;
    });
    return how !== "none";
  }

  async closeCard(card: TmCard, _event: RequestEvent, line: string): Promise<void> {
    await this.#update(card.activityId, {
      type: "message",
      attachments: [attachmentOf(closedCard(card.body, cardText(line)))],
    });
  }

  working(on: boolean): void {
    this.#typing.set(on);
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
