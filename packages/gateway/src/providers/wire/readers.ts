import { EventStreamCodec } from "@smithy/core/event-streams";
import { fromUtf8, toUtf8 } from "@smithy/core/serde";
import { createParser } from "eventsource-parser";
import type { TokenUsage } from "../usage.ts";
import type { UsageReader } from "./types.ts";

/** Folds one event or JSON answer into the usage; true when it is the answer's last event. */
export type TakeUsage = (body: Record<string, unknown>, usage: TokenUsage) => boolean | undefined;

/** Folds one AWS event stream event (by its `:event-type`) into the usage; true on the last one. */
export type TakeEvent = (
  eventType: string,
  body: Record<string, unknown>,
  usage: TokenUsage,
) => boolean;

/** JSON answers are read up to this size; a bigger one is an error page or an attack. */
const MAX_JSON = 4_000_000;

export function emptyUsage(): TokenUsage {
  return { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 };
}

/** A token count from a provider's answer: a non-negative number, else 0. */
export function count(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Usage from a server-sent-events stream or a JSON answer (an object, or an
 * array of stream chunks as Gemini sends without `alt=sse`).
 */
export class EventUsage implements UsageReader {
  readonly usage = emptyUsage();
  ended = false;
  private readonly decoder = new TextDecoder();
  private readonly sse: ReturnType<typeof createParser> | undefined;
  private json = "";
  private readonly take: TakeUsage;

  constructor(contentType: string, take: TakeUsage) {
    this.take = take;
    if (contentType.includes("text/event-stream")) {
      this.sse = createParser({
        onEvent: (e) => {
          if (e.data === "[DONE]") {
            this.ended = true;
            return;
          }
          try {
            const body: unknown = JSON.parse(e.data);
            if (isRecord(body) && this.take(body, this.usage)) this.ended = true;
          } catch {
            // Not JSON (a ping): nothing to count.
          }
        },
      });
    }
  }

  push(chunk: Uint8Array): void {
    const text = this.decoder.decode(chunk, { stream: true });
    if (this.sse) this.sse.feed(text);
    else if (this.json.length < MAX_JSON) this.json += text;
  }

  finish(): TokenUsage {
    if (!this.sse && this.json) {
      try {
        const parsed: unknown = JSON.parse(this.json);
        for (const body of Array.isArray(parsed) ? parsed : [parsed]) {
          if (isRecord(body)) this.take(body, this.usage);
        }
      } catch {
        // Not JSON (an error page): no usage to count.
      }
      this.json = "";
    }
    return this.usage;
  }
}

/**
 * Usage from an AWS event stream (`application/vnd.amazon.eventstream`): binary
 * frames, each a length-prefixed message with typed headers and a JSON payload,
 * decoded with the AWS SDK's own codec. Other content types are read as JSON.
 */
export class AwsEventStreamUsage implements UsageReader {
  readonly usage = emptyUsage();
  private done = false;
  private readonly codec = new EventStreamCodec(toUtf8, fromUtf8);
  private readonly json: EventUsage | undefined;
  private buffer = new Uint8Array(0);
  private broken = false;
  /** Folds one event (by its `:event-type`) into the usage; true on the last one. */
  private readonly take: TakeEvent;

  constructor(contentType: string, take: TakeEvent, takeJson: TakeUsage) {
    this.take = take;
    if (!contentType.includes("application/vnd.amazon.eventstream")) {
      this.json = new EventUsage(contentType, takeJson);
    }
  }

  push(chunk: Uint8Array): void {
    if (this.json) {
      this.json.push(chunk);
      return;
    }
    if (this.broken) return;
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    let at = 0;
    while (joined.length - at >= 4) {
      const total = new DataView(joined.buffer, joined.byteOffset + at, 4).getUint32(0);
      // 16 bytes of prelude and trailer at least; a frame over 16 MiB is no model event.
      if (total < 16 || total > 16 * 1024 * 1024) {
        this.broken = true;
        return;
      }
      if (joined.length - at < total) break;
      this.frame(joined.subarray(at, at + total));
      at += total;
    }
    this.buffer = joined.slice(at);
  }

  private frame(bytes: Uint8Array): void {
    try {
      const message = this.codec.decode(bytes);
      const kind = message.headers[":message-type"]?.value;
      const type =
        message.headers[":event-type"]?.value ?? message.headers[":exception-type"]?.value;
      if (kind === "exception" || kind === "error") {
        this.done = true;
        return;
      }
      const body: unknown = JSON.parse(toUtf8(message.body));
      if (typeof type === "string" && isRecord(body) && this.take(type, body, this.usage))
        this.done = true;
    } catch {
      // A frame that fails its checksum or is not JSON: nothing to count from it.
    }
  }

  get ended(): boolean {
    return this.json ? this.json.ended : this.done;
  }

  finish(): TokenUsage {
    return this.json ? this.json.finish() : this.usage;
  }
}
