import type { TextDecoder } from "node:util";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { ProviderType } from "./registry.ts";

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

/**
 * Reads token usage out of a provider response as it streams past, without
 * holding the stream back. Counts come from the provider, not the worker, so a
 * compromised worker cannot under-report.
 */
export class UsageMeter {
  readonly usage: TokenUsage = { inputTokens: 0, outputTokens: 0 };
  private readonly type: ProviderType;
  private readonly sse: ReturnType<typeof createParser> | undefined;
  private json = "";
  private readonly streaming: boolean;

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
    if (event.data === "[DONE]") return;
    try {
      this.take(JSON.parse(event.data) as Record<string, unknown>);
    } catch {
      // Ignore non-JSON events (pings).
    }
  }

  private take(body: Record<string, unknown>): void {
    if (this.type === "anthropic") {
      const message = body.message as { usage?: Record<string, number> } | undefined;
      const usage = (body.usage ?? message?.usage) as Record<string, number> | undefined;
      if (!usage) return;
      if (typeof usage.input_tokens === "number") {
        this.usage.inputTokens =
          usage.input_tokens +
          (usage.cache_read_input_tokens ?? 0) +
          (usage.cache_creation_input_tokens ?? 0);
      }
      if (typeof usage.output_tokens === "number") this.usage.outputTokens = usage.output_tokens;
    } else {
      const usage = body.usage as Record<string, number> | undefined | null;
      if (!usage) return;
      if (typeof usage.prompt_tokens === "number") this.usage.inputTokens = usage.prompt_tokens;
      if (typeof usage.completion_tokens === "number")
        this.usage.outputTokens = usage.completion_tokens;
    }
  }
}
