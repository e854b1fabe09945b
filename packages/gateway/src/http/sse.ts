import type { AgentEvent } from "@lobu/core";
import type { Context } from "hono";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";

const TERMINAL = new Set(["done", "error"]);

/** Where a message's events are read from (the conversation records). */
export interface MessageEventLog {
  /** Events after `after`, waiting up to `blockMs` for the first one. */
  readEvents(
    messageId: string,
    after: string | undefined,
    opts: { blockMs: number; signal?: AbortSignal },
  ): Promise<{ id: string; event: AgentEvent }[]>;
}

/**
 * Stream a message's events as Server-Sent Events until its final event.
 * Each event carries its log id, so a client that reconnects with
 * `Last-Event-ID` resumes exactly where it stopped.
 */
export function streamMessageEvents(
  c: Context,
  conversations: MessageEventLog,
  messageId: string,
  opts: {
    after?: string | undefined;
    /**
     * Called once when the stream ends, whatever the reason: its last event, a
     * store error, or the client going away (that aborts the blocked read).
     */
    onClose?: () => void;
  } = {},
): Response {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    try {
      await pump(stream, conversations, messageId, opts.after, abort.signal);
    } finally {
      opts.onClose?.();
    }
  });
}

async function pump(
  stream: SSEStreamingApi,
  conversations: MessageEventLog,
  messageId: string,
  after: string | undefined,
  signal: AbortSignal,
): Promise<void> {
  let cursor = after;
  let lastBeat = Date.now();
  while (!signal.aborted) {
    const batch = await conversations.readEvents(messageId, cursor, { blockMs: 10_000, signal });
    for (const { id, event } of batch) {
      cursor = id;
      await stream.writeSSE({
        id,
        event: event.type,
        data: JSON.stringify(event satisfies AgentEvent),
      });
      if (TERMINAL.has(event.type)) return;
    }
    if (batch.length === 0 && Date.now() - lastBeat >= 10_000) {
      lastBeat = Date.now();
      await stream.write(": keep-alive\n\n");
    }
  }
}
