import type { PriceSection } from "@lobu/core";

/** Token counts a cost is estimated from (cache counts are parts of `inputTokens`). */
export interface PricedCounts {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
}

/**
 * The price of `provider/model` from `[prices]`: the exact key, else the longest
 * `"provider/prefix*"` key the model starts with (dated model versions share
 * one price). Undefined when none applies: the report says "no price", never 0.
 */
export function priceFor(
  prices: Record<string, PriceSection>,
  provider: string,
  model: string,
): PriceSection | undefined {
  const id = `${provider}/${model}`;
  const exact = prices[id];
  if (exact) return exact;
  let best: { length: number; price: PriceSection } | undefined;
  for (const [key, price] of Object.entries(prices)) {
    if (!key.endsWith("*")) continue;
    const prefix = key.slice(0, -1);
    if (id.startsWith(prefix) && (!best || prefix.length > best.length))
      best = { length: prefix.length, price };
  }
  return best?.price;
}

/** Estimated cost in USD of `counts` at `price` (USD per million tokens). */
export function costUsd(price: PriceSection, counts: PricedCounts): number {
  const cached = Math.min(counts.cacheReadTokens + counts.cacheWriteTokens, counts.inputTokens);
  const plainInput = counts.inputTokens - cached;
  const micro =
    plainInput * price.input +
    counts.cacheReadTokens * (price.cache_read ?? price.input) +
    counts.cacheWriteTokens * (price.cache_write ?? price.input) +
    counts.outputTokens * price.output;
  return micro / 1_000_000;
}

/**
 * Estimated cost of `counts` of `provider/model`, or null when the model has no
 * price: `[prices]` first (the operator's contract), else `fallback` (the model
 * catalogue's list price).
 */
export function estimateCost(
  prices: Record<string, PriceSection>,
  provider: string,
  model: string,
  counts: PricedCounts,
  fallback?: (provider: string, model: string) => PriceSection | undefined,
): number | null {
  const price = priceFor(prices, provider, model) ?? fallback?.(provider, model);
  return price ? costUsd(price, counts) : null;
}
