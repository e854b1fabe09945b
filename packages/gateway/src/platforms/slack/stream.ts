import type { WebClient } from "@slack/web-api";
import type { Origin } from "../../domain/origin.ts";
import type { Part } from "../shared/turn-view.ts";
import { slackCall } from "./client.ts";

/**
 * Slack's native streaming messages (chat.startStream / appendStream /
 * stopStream): the reply grows by appended Markdown instead of by edits of
 * one message. Slack offers it in threads; the surface (surface.ts) uses it
 * there when `native_streaming` is on and falls back to edits when the
 * content changes other than by growing (a retried attempt).
 */

/** Slack takes at most this much Markdown per streaming call. */
const CHUNK_CHARS = 10_000;

/** The reply as the Markdown a stream shows: text as written, tool lines and notices as lines. */
export function streamMarkdown(parts: Part[]): string {
  return parts.map((p) => p.text).join("\n\n");
}

/** `text` in pieces Slack takes per call. */
function chunks(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += CHUNK_CHARS) out.push(text.slice(i, i + CHUNK_CHARS));
  return out;
}

/** One streaming message in a thread. */
export class NativeStream {
  readonly #client: WebClient;
  readonly channel: string;
  readonly ts: string;
  /** What the message shows so far. */
  shown: string;

  private constructor(client: WebClient, channel: string, ts: string, shown: string) {
    this.#client = client;
    this.channel = channel;
    this.ts = ts;
    this.shown = shown;
  }

  /**
   * Start a stream in the origin's thread with `markdown` (more is appended),
   * posted as `as` (the agent's name and picture, with chat:write.customize).
   */
  static async start(
    client: WebClient,
    origin: Origin,
    markdown: string,
    as: { username?: string; icon_url?: string } = {},
  ): Promise<NativeStream> {
    const [first = "", ...rest] = chunks(markdown);
    const res = await slackCall(() =>
      client.chat.startStream({
        channel: origin.channelId,
        thread_ts: origin.threadId as string,
        markdown_text: first,
        ...as,
        // Slack needs the person the stream is for outside a DM.
        ...(origin.workspace ? { recipient_team_id: origin.workspace } : {}),
        recipient_user_id: origin.userId,
      }),
    );
    const stream = new NativeStream(
      client,
      res.channel ?? origin.channelId,
      res.ts as string,
      first,
    );
    for (const piece of rest) await stream.#append(piece);
    return stream;
  }

  /** Whether `markdown` only adds to what is shown (a stream can only grow). */
  grows(markdown: string): boolean {
    return markdown.startsWith(this.shown);
  }

  /** Append what `markdown` adds to what is shown. */
  async update(markdown: string): Promise<void> {
    for (const piece of chunks(markdown.slice(this.shown.length))) await this.#append(piece);
  }

  /** End the stream, with what `markdown` still adds (when it grows). */
  async stop(markdown?: string): Promise<void> {
    const rest = markdown !== undefined && this.grows(markdown) ? markdown : this.shown;
    const pieces = chunks(rest.slice(this.shown.length));
    const last = pieces.pop();
    for (const piece of pieces) await this.#append(piece);
    await slackCall(() =>
      this.#client.chat.stopStream({
        channel: this.channel,
        ts: this.ts,
        ...(last ? { markdown_text: last } : {}),
      }),
    );
    if (last) this.shown += last;
  }

  async #append(piece: string): Promise<void> {
    await slackCall(() =>
      this.#client.chat.appendStream({ channel: this.channel, ts: this.ts, markdown_text: piece }),
    );
    this.shown += piece;
  }
}
