import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { readRaw } from "../platform-kit/http.ts";

// One set of HTTP helpers for every emulator.
export { sendJson } from "../platform-kit/http.ts";
export { sleep };

export async function readBody(req: IncomingMessage): Promise<string> {
  return (await readRaw(req)).toString("utf8");
}

/** Resolves once the connection behind `res` is gone (client disconnect or response finished). */
export function closed(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => res.once("close", () => resolve()));
}

/** A server-sent-events response that stops writing quietly once the client has gone. */
export class SseStream {
  readonly #res: ServerResponse;

  constructor(res: ServerResponse, headers: OutgoingHttpHeaders) {
    this.#res = res;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      ...headers,
    });
    res.flushHeaders();
  }

  get open(): boolean {
    return !this.#res.destroyed && !this.#res.writableEnded;
  }

  /** Anthropic style when `event` is given (`event:` + `data:`), OpenAI style (`data:` only) otherwise. */
  send(data: unknown, event?: string): void {
    this.write(`${event ? `event: ${event}\n` : ""}data: ${JSON.stringify(data)}\n\n`);
  }

  write(raw: string): void {
    if (this.open) this.#res.write(raw);
  }

  end(): void {
    if (this.open) this.#res.end();
  }
}

/** Spaces out stream deltas: the first goes out at once, each later one after `delayMs`. */
export function pacer(delayMs: number): () => Promise<void> {
  let first = true;
  return async () => {
    if (first || delayMs <= 0) {
      first = false;
      return;
    }
    await sleep(delayMs);
  };
}
