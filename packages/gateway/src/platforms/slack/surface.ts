import type { WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import type { Origin } from "../adapter.ts";
import type { RequestEvent } from "../shared/requests.ts";
import type { Part, ReplySurface } from "../shared/turn-view.ts";
import {
  type Block,
  cardBlocks,
  cardFallback,
  cardSections,
  closedCard,
  context,
  liveBlocks,
} from "./blocks.ts";
import { slackCall } from "./client.ts";

export interface SlackLive {
  channel: string;
  ts: string;
  /** The full text went up as a file already. */
  uploaded?: boolean;
}

export interface SlackCard {
  channel: string;
  ts: string;
  sections: Block[];
  fallback: string;
}

/** One turn's messages in a Slack thread: a "Thinking…" placeholder that streams into the reply. */
export class SlackSurface implements ReplySurface<SlackLive, SlackCard> {
  readonly #client: WebClient;
  readonly #origin: Origin;
  readonly #maxInline: number;
  readonly #settingsUrl: () => Promise<string | undefined>;
  readonly #log: Logger;

  constructor(
    client: WebClient,
    origin: Origin,
    opts: { maxInlineChars: number; settingsUrl: () => Promise<string | undefined>; log: Logger },
  ) {
    this.#client = client;
    this.#origin = origin;
    this.#maxInline = opts.maxInlineChars;
    this.#settingsUrl = opts.settingsUrl;
    this.#log = opts.log;
  }

  get #thread(): { thread_ts?: string } {
    return this.#origin.threadId ? { thread_ts: this.#origin.threadId } : {};
  }

  async begin(): Promise<SlackLive> {
    const res = await slackCall(() =>
      this.#client.chat.postMessage({
        channel: this.#origin.channelId,
        ...this.#thread,
        text: "Thinking…",
        blocks: [context("_Thinking…_")],
      }),
    );
    return { channel: res.channel ?? this.#origin.channelId, ts: res.ts as string };
  }

  async render(handle: SlackLive | undefined, parts: Part[], final: boolean): Promise<SlackLive> {
    const { blocks, text, overflow } = liveBlocks(parts, this.#maxInline, final);
    let live: SlackLive;
    if (!handle) {
      const res = await slackCall(() =>
        this.#client.chat.postMessage({
          channel: this.#origin.channelId,
          ...this.#thread,
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

  async #upload(text: string): Promise<void> {
    try {
      const file = { filename: "reply.md", title: "Full reply", content: text };
      const channel_id = this.#origin.channelId;
      const thread_ts = this.#origin.threadId;
      await slackCall(() =>
        thread_ts
          ? this.#client.filesUploadV2({ channel_id, thread_ts, ...file })
          : this.#client.filesUploadV2({ channel_id, ...file }),
      );
    } catch (err) {
      this.#log.warn(
        { err },
        "could not attach the full reply as a file (needs the files:write scope)",
      );
    }
  }

  async discard(handle: SlackLive): Promise<void> {
    await slackCall(() => this.#client.chat.delete({ channel: handle.channel, ts: handle.ts }));
  }

  async postCard(event: RequestEvent): Promise<SlackCard> {
    const settingsUrl =
      event.type === "capability_request" ? (event.url ?? (await this.#settingsUrl())) : undefined;
    const fallback = cardFallback(event);
    const res = await slackCall(() =>
      this.#client.chat.postMessage({
        channel: this.#origin.channelId,
        ...this.#thread,
        text: fallback,
        blocks: cardBlocks(event, settingsUrl),
      }),
    );
    return {
      channel: res.channel ?? this.#origin.channelId,
      ts: res.ts as string,
      sections: cardSections(event),
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

  working(): void {
    // The placeholder message is the hint; Slack has no typing indicator for bots outside assistant threads.
  }
}
