import type { TextDecoder } from "node:util";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { ProviderType } from "./registry.ts";

export interface TokenUsage {
  /** All input tokens, cached ones included. */
  inputTokens: number;
  outputTokens: number;
  /** Of `inputTokens`: read from the provider's prompt cache (priced lower). */
  cacheReadTokens: number;
  /** Of `inputTokens`: written to the provider's prompt cache (Anthropic; priced higher). */
  cacheWriteTokens: number;
}

/**
 * Reads token usage out of a provider response as it streams past, without
 * holding the stream back. Counts come from the provider, not the worker, so a
 * compromised worker cannot under-report.
 */
export class UsageMeter {
  readonly usage: TokenUsage = {
    inputTokens: 0,
    outputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
  };
  private readonly type: ProviderType;
  private readonly sse: ReturnType<typeof createParser> | undefined;
  private json = "";
  private readonly streaming: boolean;
  /**
   * The stream's last event (Anthropic `message_stop`, OpenAI `[DONE]`) has
   * been read: the usage is final although the connection may not be closed yet.
   */
  ended = false;

  constructor(type: ProviderType, contentType: string) {
    this.type = type;
    this.streaming = contentType.includes("text/event-stream");
    if (this.streaming) this.sse = createParser({ onEvent: (e) => this.onEvent(e) });
  }

  push(chunk: Uint8Array, decoder: TextDecoder): void {
    const text = decoder.decode(chunk, { stream: true });
    if (this.sse) this.sse.feed(text);
    else if (this.json.length < 4_000_000) this.json += text;
  }

  finish(): TokenUsage {
    if (!this.streaming && this.json) {
      try {
        this.take(JSON.parse(this.json) as Record<string, unknown>);
      } catch {
        // Not JSON (an error page): no usage to count.
      }
    }
    return this.usage;
  }

  private onEvent(event: EventSourceMessage): void {
    if (event.data === "[DONE]") {
      this.ended = true;
      return;
    }
    try {
      const body = JSON.parse(event.data) as Record<string, unknown>;
      if (body.type === "message_stop") this.ended = true;
      this.take(body);
    } catch {
      // Ignore non-JSON events (pings).
    }
  }

  private take(body: Record<string, unknown>): void {
    if (this.type === "anthropic") {
      const message = body.message as { usage?: Record<string, number> } | undefined;
      const usage = (body.usage ?? message?.usage) as Record<string, number> | undefined;
      if (!usage) return;
      // A later event (message_delta) may repeat some counts and omit others: keep what it omits.
      if (typeof usage.cache_read_input_tokens === "number")
        this.usage.cacheReadTokens = count(usage.cache_read_input_tokens);
      if (typeof usage.cache_creation_input_tokens === "number")
        this.usage.cacheWriteTokens = count(usage.cache_creation_input_tokens);
      if (typeof usage.input_tokens === "number") {
        // Anthropic's input_tokens excludes cached input; the total includes it.
        this.usage.inputTokens =
          usage.input_tokens + this.usage.cacheReadTokens + this.usage.cacheWriteTokens;
      }
      if (typeof usage.output_tokens === "number") this.usage.outputTokens = usage.output_tokens;
    } else {
      const usage = body.usage as Record<string, unknown> | undefined | null;
      if (!usage) return;
      if (typeof usage.prompt_tokens === "number") {
        this.usage.inputTokens = usage.prompt_tokens;
        const details = usage.prompt_tokens_details as Record<string, unknown> | undefined | null;
        this.usage.cacheReadTokens = Math.min(count(details?.cached_tokens), usage.prompt_tokens);
      }
      if (typeof usage.completion_tokens === "number")
        this.usage.outputTokens = usage.completion_tokens;
    }
  }
}

/** A token count from a provider's answer: a non-negative number, else 0. */
function count(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;
}
