import type { AgentEvent } from "@lobu/core";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { Conversations } from "../conversations/records.ts";

const TERMINAL = new Set(["done", "error"]);

/**
 * Stream a message's events as Server-Sent Events until its final event.
 * Each event carries its log id, so a client that reconnects with
 * `Last-Event-ID` resumes exactly where it stopped.
 */
export function streamMessageEvents(
  c: Context,
  conversations: Conversations,
  messageId: string,
  after?: string,
): Response {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    let cursor = after;
    let lastBeat = Date.now();
    while (!abort.signal.aborted) {
      const batch = await conversations.readEvents(messageId, cursor, {
        blockMs: 10_000,
        signal: abort.signal,
      });
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
  });
}
