import type { API } from "@discordjs/core";
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
import { cardMarkdown, type RequestEvent } from "../shared/requests.ts";
import { keepPlainLive, type Part, type ReplySurface } from "../shared/turn-view.ts";
import { TypingHint } from "../shared/typing.ts";
import { dcCall } from "./client.ts";
import { type ActionRow, cardComponents, stopRow } from "./components.ts";
import { discordMarkdown, MESSAGE_LIMIT, replyChunks, toDiscord } from "./format.ts";

export type DcLive = LiveMessages<string>;

export interface DcCard {
  messageId: string;
  content: string;
}

/** What an approval card shows inline (2,000 characters per message, heading and notes included). */
export const APPROVAL_INLINE = { maxChars: 1200, maxLines: 40 };

/** Discord shows "typing…" for about ten seconds per request. */
const TYPING_EVERY_MS = 8_000;

/**
 * One turn in a Discord channel, thread or DM: "typing…" while the agent
 * works, the reply streamed by editing its message(s), cards with buttons or
 * a select menu. In a server the first message replies to the person's.
 */
export class DiscordSurface implements ReplySurface<DcLive, DcCard> {
  /** Its messages are taken over by the gateway re-running a dead gateway's turn (turn-view.ts). */
  readonly keep = keepPlainLive<DcLive>("ids", "string");
  readonly #api: API;
  readonly #origin: Origin;
  readonly #state: AdapterContext["state"];
  readonly #settingsUrl: () => Promise<string | undefined>;
  readonly #log: Logger;
  /** The turn's message: the streaming reply's Stop buttons name it. */
  readonly #messageId: string | undefined;
  readonly #typing: TypingHint;
  #replied = false;
  /** Approval inputs already sent, by file name, and how (a retried card sends none twice). */
  readonly #attached = new Map<string, "message" | "file">();

  constructor(
    api: API,
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
    this.#origin = origin;
    this.#state = opts.state;
    this.#settingsUrl = opts.settingsUrl;
    this.#log = opts.log;
    this.#messageId = opts.messageId;
    this.#typing = new TypingHint({
      everyMs: TYPING_EVERY_MS,
      send: () => this.#api.channels.showTyping(this.#origin.channelId),
      log: this.#log,
      failure: "Discord typing indicator failed",
    });
  }

  async begin(): Promise<undefined> {
    return undefined;
  }

  async render(handle: DcLive | undefined, parts: Part[], final: boolean): Promise<DcLive> {
    // While the reply streams, its last message carries the Stop buttons; the final edit drops them.
    const stop = !final && this.#messageId ? [stopRow(this.#messageId)] : undefined;
    return renderMessages(handle, replyChunks(parts), stop, {
      send: (content, components) => this.#send(content, components),
      edit: async (id, content, components) => {
        await dcCall(() =>
          this.#api.channels.editMessage(this.#origin.channelId, id, {
            content,
            components: components ?? [],
          }),
        );
      },
      remove: (id) => this.#delete(id),
    });
  }

  async discard(handle: DcLive): Promise<void> {
    for (const id of handle.ids) await this.#delete(id);
  }

  async postCard(event: RequestEvent): Promise<DcCard> {
    let content = toDiscord(cardMarkdown(event))[0] ?? "…";
    let approvable = true;
    if (event.type === "approval_request") {
      const view = approvalView(event, APPROVAL_INLINE);
      // Too long for the card: the whole input goes first, as a message of its own or as a file.
      const attached = view.cut ? await this.#sendFullInput(view, event.tool) : "none";
      approvable = canApprove(view, attached !== "none");
      const notes = approvalNotes(view, attached !== "none").map((n) => toDiscord(n)[0] ?? "");
      content = [content, discordMarkdown.codeBlock(view.shown), ...notes].join("\n\n");
      if (attached === "message")
        content = content.replace(
          /attached above as `approval-[^`]+\.txt`/,
          "in the message above",
        );
      content = content.slice(0, MESSAGE_LIMIT);
    }
    const url =
      event.type === "capability_request" ? (event.url ?? (await this.#settingsUrl())) : undefined;
    const components = await cardComponents(event, url, this.#state, approvable);
    const messageId = await this.#send(content, components);
    return { messageId, content };
  }

  /**
   * An approval's whole input, before its card: a message when it fits in
   * one, else a text file attached to a message. "none" when Discord refused
   * it; the card then offers Deny only.
   */
  async #sendFullInput(view: ApprovalView, tool: string): Promise<"message" | "file" | "none"> {
    return sendInputOnce(this.#attached, view.fileName, this.#log, async () => {
      const inline = `Full input waiting for your approval:\n${discordMarkdown.codeBlock(view.full)}`;
      if (inline.length <= MESSAGE_LIMIT) {
        await this.#send(inline);
        return "message";
      }
      await this.#send(`Full input of the \`${tool}\` call waiting for your approval:`, undefined, [
        { name: view.fileName, data: Buffer.from(view.full, "utf8"), contentType: "text/plain" },
      ]);
      return "file";
    });
  }

  async closeCard(card: DcCard, _event: RequestEvent, line: string): Promise<void> {
    const content = `${card.content}\n\n${toDiscord(line)[0] ?? ""}`.slice(0, MESSAGE_LIMIT);
    await dcCall(() =>
      this.#api.channels.editMessage(this.#origin.channelId, card.messageId, {
        content,
        components: [],
      }),
    );
  }

  working(on: boolean): void {
    this.#typing.set(on);
  }

  async #send(
    content: string,
    components?: ActionRow[],
    files?: { name: string; data: Buffer; contentType: string }[],
  ): Promise<string> {
    const replyTo = this.#replied || this.#origin.isDirect ? undefined : this.#origin.messageRef;
    const sent = await dcCall(() =>
      this.#api.channels.createMessage(this.#origin.channelId, {
        content,
        allowed_mentions: { parse: [] },
        ...(components ? { components } : {}),
        ...(files ? { files } : {}),
        ...(replyTo
          ? { message_reference: { message_id: replyTo, fail_if_not_exists: false } }
          : {}),
      }),
    );
    this.#replied = true;
    return sent.id;
  }

  async #delete(id: string): Promise<void> {
    await dcCall(() => this.#api.channels.deleteMessage(this.#origin.channelId, id)).catch((err) =>
      this.#log.debug({ err }, "could not delete a Discord message"),
    );
  }
}
