import { LobuError, type PriceSection } from "@lobu/core";
import type { UsageRow, UsageSummary } from "@lobu/core/views";
import type { UsageTotal } from "../audit/log.ts";
import type { Budgets } from "./budgets.ts";
import { estimateCost } from "./prices.ts";

export interface UsageReportDeps {
  usageTotals(sinceDay?: string): Promise<UsageTotal[]>;
  agentIds(): Promise<string[]>;
  budgets: Budgets;
  prices: Record<string, PriceSection>;
  /** The model catalogue's price, for models `[prices]` does not name. */
  catalogPrice?: (provider: string, model: string) => PriceSection | undefined;
}

function withCost(deps: UsageReportDeps, row: Omit<UsageRow, "costUsd">): UsageRow {
  return {
    ...row,
    costUsd: estimateCost(deps.prices, row.provider, row.model, row, deps.catalogPrice),
  };
}

/**
 * The usage report: the relay's counters per day, agent, person, provider and
 * model, summed over the period, priced from `[prices]` (else the model
 * catalogue), and the budgets that
 * apply right now.
 */
export async function usageReport(deps: UsageReportDeps, since?: string): Promise<UsageSummary> {
  const rows = await deps.usageTotals(since);
  const daily = rows.map((r) => withCost(deps, r) as UsageRow & { day: string });
  const sums = new Map<string, Omit<UsageRow, "costUsd">>();
  for (const r of rows) {
    const id = `${r.agentId}|${r.userKey}|${r.provider}|${r.model}`;
    const t = sums.get(id) ?? {
      agentId: r.agentId,
      userKey: r.userKey,
      provider: r.provider,
      model: r.model,
      inputTokens: 0,
      outputTokens: 0,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      requests: 0,
    };
    t.inputTokens += r.inputTokens;
    t.outputTokens += r.outputTokens;
    t.cacheReadTokens += r.cacheReadTokens;
    t.cacheWriteTokens += r.cacheWriteTokens;
    t.requests += r.requests;
    sums.set(id, t);
  }
  const totals = [...sums.values()]
    .map((t) => withCost(deps, t))
    .sort(
      (a, b) =>
        (b.costUsd ?? -1) - (a.costUsd ?? -1) ||
        b.inputTokens + b.outputTokens - (a.inputTokens + a.outputTokens),
    );
  const unpriced = new Set<string>();
  let costUsd = 0;
  for (const t of totals) {
    if (t.costUsd === null) {
      if (t.inputTokens + t.outputTokens > 0)
        unpriced.add(`${t.provider}/${t.model || "(model not recorded)"}`);
    } else costUsd += t.costUsd;
  }
  return {
    since: since ?? null,
    currency: "USD",
    costUsd,
    unpriced: [...unpriced].sort(),
    totals,
    daily,
    budgets: await deps.budgets.report(await deps.agentIds()),
  };
}

/** A real calendar day as YYYY-MM-DD (2025-02-31 is not). */
function isDay(text: string): boolean {
  const at = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(text) : Number.NaN;
  return !Number.isNaN(at) && new Date(at).toISOString().startsWith(text);
}

/** The usage report since a day (YYYY-MM-DD, UTC; all time when absent), for the API and the admin UI. */
export async function usageSummary(deps: UsageReportDeps, since?: string): Promise<UsageSummary> {
  const day = since?.trim() || undefined;
  if (day && !isDay(day)) {
    throw new LobuError("invalid_request", `since=${day} is not a date`, {
      status: 400,
      hint: "Use YYYY-MM-DD (UTC), e.g. since=2025-01-31, or leave it out for all time.",
    });
  }
  return usageReport(deps, day);
}
