import type { WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import type { Persona } from "../../domain/messages.ts";
import type { Origin } from "../../domain/origin.ts";
import { type ApprovalView, approvalView } from "../shared/approval-view.ts";
import { RetryLater } from "../shared/pacing.ts";
import type { RequestEvent } from "../shared/requests.ts";
import type { Part, ReplySurface } from "../shared/turn-view.ts";
import { setAssistantStatus, WORKING_STATUS } from "./assistant.ts";
import {
  APPROVAL_INLINE,
  type Block,
  cardBlocks,
  cardFallback,
  cardSections,
  closedCard,
  context,
  liveBlocks,
  stopBlock,
} from "./blocks.ts";
import { slackCall } from "./client.ts";
import { NativeStream, streamMarkdown } from "./stream.ts";

export interface SlackLive {
  channel: string;
  ts: string;
  /** The full text went up as a file already. */
  uploaded?: boolean;
  /** A native streaming message still open (stream.ts); edits take over once it ends. */
  stream?: NativeStream;
  /** A native stream another gateway opened and did not end (it died): end it before editing. */
  orphanStream?: boolean;
}

/** A live message as kept in the store (turn-view.ts `keep`), for the gateway that re-runs the turn. */
export const keepSlackLive = {
  ref(handle: SlackLive): unknown {
    return {
      channel: handle.channel,
      ts: handle.ts,
      ...(handle.uploaded ? { uploaded: true } : {}),
      ...(handle.stream || handle.orphanStream ? { stream: true } : {}),
    };
  },
  revive(ref: unknown): SlackLive | undefined {
    const r = ref as { channel?: unknown; ts?: unknown; uploaded?: unknown; stream?: unknown };
    if (typeof r?.channel !== "string" || typeof r.ts !== "string") return undefined;
    return {
      channel: r.channel,
      ts: r.ts,
      ...(r.uploaded === true ? { uploaded: true } : {}),
      ...(r.stream === true ? { orphanStream: true } : {}),
    };
  },
};

export interface SlackCard {
  channel: string;
  ts: string;
  sections: Block[];
  fallback: string;
}

/**
 * One turn's messages in a Slack thread: a "Thinking…" placeholder that
 * streams into the reply by edits, or (`nativeStreaming`, in threads) a
 * native streaming message with the Stop buttons in a small message above
 * it. In an assistant pane thread the status line says the agent works.
 */
export class SlackSurface implements ReplySurface<SlackLive, SlackCard> {
  readonly #client: WebClient;
  readonly #origin: Origin;
  readonly #maxInline: number;
  readonly #settingsUrl: () => Promise<string | undefined>;
  readonly #log: Logger;
  /** The turn's message: the streaming reply's Stop buttons name it. */
  readonly #messageId: string | undefined;
  /** Replies stream natively (a thread, and `native_streaming` on). */
  readonly #native: boolean;
  /** The turn runs in an assistant pane thread: its status line shows the agent working. */
  readonly #assistant: boolean;
  /** The message holding the Stop buttons while a native stream runs. */
  #controls: { channel: string; ts: string } | undefined;
  /** Approval inputs already attached as files, by file name. */
  readonly #attachedInputs = new Set<string>();
  /** Who a new message is posted as; Slack keeps it through edits (chat.update takes none). */
  readonly #as: { username?: string; icon_url?: string };
  readonly keep = keepSlackLive;

  constructor(
    client: WebClient,
    origin: Origin,
    opts: {
      /** Show Stop buttons on the streaming reply for this message's turn. */
      messageId?: string;
      /** Stream with Slack's native streaming messages where the origin is a thread. */
      nativeStreaming?: boolean;
      /** The origin is an assistant pane thread. */
      assistantThread?: boolean;
      maxInlineChars: number;
      settingsUrl: () => Promise<string | undefined>;
      log: Logger;
      /** The agent's name and picture on its posts (needs `chat:write.customize`). */
      persona?: Persona | undefined;
    },
  ) {
    this.#client = client;
    this.#messageId = opts.messageId;
    this.#native = (opts.nativeStreaming ?? false) && origin.threadId !== undefined;
    this.#assistant = (opts.assistantThread ?? false) && origin.threadId !== undefined;
    this.#origin = origin;
    this.#maxInline = opts.maxInlineChars;
    this.#settingsUrl = opts.settingsUrl;
    this.#log = opts.log;
    this.#as = {
      ...(opts.persona?.name ? { username: opts.persona.name } : {}),
      ...(opts.persona?.iconUrl ? { icon_url: opts.persona.iconUrl } : {}),
    };
  }

  /** Stop buttons while the reply streams; none once it is final. */
  #stopBlocks(final: boolean): Block[] {
    return !final && this.#messageId ? [stopBlock(this.#messageId)] : [];
  }

  get #thread(): { thread_ts?: string } {
    return this.#origin.threadId ? { thread_ts: this.#origin.threadId } : {};
  }

  async begin(): Promise<SlackLive | undefined> {
    if (this.#native) {
      // The stream starts with the first text; until then the Stop buttons say the agent works.
      await this.#showControls();
      return undefined;
    }
    const res = await slackCall(() =>
      this.#client.chat.postMessage({
        channel: this.#origin.channelId,
        ...this.#thread,
        ...this.#as,
        text: "Thinking…",
        blocks: [context("_Thinking…_"), ...this.#stopBlocks(false)],
      }),
    );
    return { channel: res.channel ?? this.#origin.channelId, ts: res.ts as string };
  }

  async render(handle: SlackLive | undefined, parts: Part[], final: boolean): Promise<SlackLive> {
    if (handle?.orphanStream) handle = await this.#endOrphan(handle);
    if (handle?.stream || (handle === undefined && this.#native && !final))
      return this.#renderStream(handle, parts, final);
    return this.#renderEdited(handle, parts, final);
  }

  /** The reply as a native stream: appended while it grows, edited once it changes otherwise. */
  async #renderStream(
    handle: SlackLive | undefined,
    parts: Part[],
    final: boolean,
  ): Promise<SlackLive> {
    const markdown = streamMarkdown(parts) || "…";
    if (!handle?.stream) {
      const stream = await NativeStream.start(this.#client, this.#origin, markdown, this.#as);
      return { channel: stream.channel, ts: stream.ts, stream };
    }
    const { stream } = handle;
    const at = { channel: handle.channel, ts: handle.ts };
    if (stream.grows(markdown) && !final) {
      await stream.update(markdown);
      return handle;
    }
    if (stream.grows(markdown)) {
      await stream.stop(markdown);
      await this.#dropControls();
      return at;
    }
    // A stream only grows: end it, and show the new content by editing the message.
    await stream.stop().catch((err) => this.#log.debug({ err }, "could not end a stream"));
    await this.#dropControls();
    return this.#renderEdited(at, parts, final);
  }

  async #renderEdited(
    handle: SlackLive | undefined,
    parts: Part[],
    final: boolean,
  ): Promise<SlackLive> {
    const { blocks, text, overflow } = liveBlocks(
      parts,
      this.#maxInline,
      final,
      this.#stopBlocks(final),
    );
    let live: SlackLive;
    if (!handle) {
      const res = await slackCall(() =>
        this.#client.chat.postMessage({
          channel: this.#origin.channelId,
          ...this.#thread,
          ...this.#as,
          text,
          blocks,
          unfurl_links: false,
        }),
      );
      live = { channel: res.channel ?? this.#origin.channelId, ts: res.ts as string };
    } else {
      await slackCall(() =>
        this.#client.chat.update({ channel: handle.channel, ts: handle.ts, text, blocks }),
      );
      live = handle;
    }
    if (final && overflow && !live.uploaded) {
      await this.#upload(overflow);
      live = { ...live, uploaded: true };
    }
    return live;
  }

  /**
   * A stream left open by a gateway that died: end it as it is, then edit it
   * as the surface does its own ended streams (best effort: Slack may have
   * ended it already).
   */
  async #endOrphan(handle: SlackLive): Promise<SlackLive> {
    const at = { channel: handle.channel, ts: handle.ts };
    await slackCall(() => this.#client.chat.stopStream(at)).catch((err) =>
      this.#log.debug({ err }, "could not end the stream of an earlier attempt"),
    );
    return { ...at, ...(handle.uploaded ? { uploaded: true } : {}) };
  }

  /** Post `content` as a file in the thread. */
  async #uploadFile(content: string, filename: string, title: string): Promise<void> {
    const file = { filename, title, content };
    const channel_id = this.#origin.channelId;
    const thread_ts = this.#origin.threadId;
    await slackCall(() =>
      thread_ts
        ? this.#client.filesUploadV2({ channel_id, thread_ts, ...file })
        : this.#client.filesUploadV2({ channel_id, ...file }),
    );
  }

  async #upload(text: string): Promise<void> {
    try {
      await this.#uploadFile(text, "reply.md", "Full reply");
    } catch (err) {
      this.#log.warn(
        { err },
        "could not attach the full reply as a file (needs the files:write scope)",
      );
    }
  }

  /**
   * Attach an approval's full input (once, even when posting the card is
   * retried); false when Slack refused it, and the card then offers Deny only.
   */
  async #attachInput(view: ApprovalView, tool: string): Promise<boolean> {
    if (this.#attachedInputs.has(view.fileName)) return true;
    try {
      await this.#uploadFile(
        view.full,
        view.fileName,
        `Full input of the ${tool} call waiting for your approval`,
      );
    } catch (err) {
      if (err instanceof RetryLater) throw err;
      this.#log.warn(
        { err },
        "could not attach an approval's full input (needs the files:write scope): only Deny is offered",
      );
      return false;
    }
    this.#attachedInputs.add(view.fileName);
    return true;
  }

  async discard(handle: SlackLive): Promise<void> {
    if (handle.orphanStream) handle = await this.#endOrphan(handle);
    await handle.stream
      ?.stop()
      .catch((err) => this.#log.debug({ err }, "could not end a discarded stream"));
    await slackCall(() => this.#client.chat.delete({ channel: handle.channel, ts: handle.ts }));
  }

  /** The Stop buttons of a native stream, in a message of their own above it. */
  async #showControls(): Promise<void> {
    if (this.#controls || !this.#messageId) return;
    const res = await slackCall(() =>
      this.#client.chat.postMessage({
        channel: this.#origin.channelId,
        ...this.#thread,
        ...this.#as,
        text: "Working…",
        blocks: [context("_Working…_"), ...this.#stopBlocks(false)],
      }),
    );
    this.#controls = { channel: res.channel ?? this.#origin.channelId, ts: res.ts as string };
  }

  async #dropControls(): Promise<void> {
    const controls = this.#controls;
    this.#controls = undefined;
    if (!controls) return;
    await slackCall(() => this.#client.chat.delete(controls)).catch((err) =>
      this.#log.debug({ err }, "could not remove the Stop buttons"),
    );
  }

  async postCard(event: RequestEvent): Promise<SlackCard> {
    const settingsUrl =
      event.type === "capability_request" ? (event.url ?? (await this.#settingsUrl())) : undefined;
    const fallback = cardFallback(event);
    let approval: Parameters<typeof cardBlocks>[2];
    if (event.type === "approval_request") {
      // Too long for the card: the full input goes first, so it is there before Approve is.
      const view = approvalView(event, APPROVAL_INLINE);
      approval = { view, attached: view.cut && (await this.#attachInput(view, event.tool)) };
    }
    const res = await slackCall(() =>
      this.#client.chat.postMessage({
        channel: this.#origin.channelId,
        ...this.#thread,
        ...this.#as,
        text: fallback,
        blocks: cardBlocks(event, settingsUrl, approval),
      }),
    );
    return {
      channel: res.channel ?? this.#origin.channelId,
      ts: res.ts as string,
      sections: cardSections(event, approval),
      fallback,
    };
  }

  async closeCard(card: SlackCard, _event: RequestEvent, line: string): Promise<void> {
    await slackCall(() =>
      this.#client.chat.update({
        channel: card.channel,
        ts: card.ts,
        text: card.fallback,
        blocks: closedCard(card.sections, line),
      }),
    );
  }

  working(on: boolean): void {
    // Outside assistant threads the placeholder message is the hint (bots have no typing indicator).
    if (!this.#assistant || !this.#origin.threadId) return;
    const at = { channel: this.#origin.channelId, threadTs: this.#origin.threadId };
    setAssistantStatus({ client: this.#client }, at, on ? WORKING_STATUS : "", this.#log);
  }
}
