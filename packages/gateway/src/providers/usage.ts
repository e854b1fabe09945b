import type { ProviderType } from "./registry.ts";
import { type UsageReader, WIRES } from "./wire/index.ts";

export interface TokenUsage {
  /** All input tokens, cached ones included. */
  inputTokens: number;
  outputTokens: number;
  /** Of `inputTokens`: read from the provider's prompt cache (priced lower). */
  cacheReadTokens: number;
  /** Of `inputTokens`: written to the provider's prompt cache (Anthropic, Bedrock; priced higher). */
  cacheWriteTokens: number;
}

/**
 * Reads token usage out of a provider response as it streams past, without
 * holding the stream back, in the provider's own format (wire/<type>.ts).
 * Counts come from the provider, not the worker, so a compromised worker
 * cannot under-report.
 */
export class UsageMeter {
  private readonly reader: UsageReader;

  constructor(type: ProviderType, contentType: string) {
    this.reader = WIRES[type].usage(contentType);
  }

  /** The stream's last event has been read: the usage is final. */
  get ended(): boolean {
    return this.reader.ended;
  }

  push(chunk: Uint8Array): void {
    this.reader.push(chunk);
  }

  finish(): TokenUsage {
    return this.reader.finish();
  }
}
