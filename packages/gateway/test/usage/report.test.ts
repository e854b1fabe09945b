import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, parseConfig } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/audit/log.ts";
import { UsageMeter } from "../../src/providers/usage.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { Budgets } from "../../src/usage/budgets.ts";
import { costUsd, priceFor } from "../../src/usage/prices.ts";
import { usageReport } from "../../src/usage/report.ts";

/** Cost estimates from `[prices]`, cache tokens from provider answers, and the usage report. */

const CONFIG = parseConfig(`
[budgets.per_user]
tokens_per_day = 100000

[prices."anthropic/claude-sonnet-4-5"]
input = 3
output = 15
cache_read = 0.3
cache_write = 3.75

[prices."anthropic/claude-sonnet-4-5*"]
input = 4
output = 20

[prices."anthropic/claude*"]
input = 1
output = 2

[prices."openai/gpt-4.1-mini"]
input = 0.4
output = 1.6
`);

describe("prices", () => {
  it("match the exact provider/model, else the longest prefix, else none", () => {
    expect(priceFor(CONFIG.prices, "anthropic", "claude-sonnet-4-5")?.input).toBe(3);
    expect(priceFor(CONFIG.prices, "anthropic", "claude-sonnet-4-5-20250929")?.input).toBe(4);
    expect(priceFor(CONFIG.prices, "anthropic", "claude-haiku-4-5")?.input).toBe(1);
    expect(priceFor(CONFIG.prices, "openai", "claude-sonnet-4-5")).toBeUndefined();
    expect(priceFor(CONFIG.prices, "openai", "gpt-4.1")).toBeUndefined();
  });

  it("price cached input at the cache prices, or at the input price when none is given", () => {
    const sonnet = CONFIG.prices["anthropic/claude-sonnet-4-5"]!;
    // 1M input of which 400k cache reads and 100k cache writes, 200k output.
    const counts = {
      inputTokens: 1_000_000,
      outputTokens: 200_000,
      cacheReadTokens: 400_000,
      cacheWriteTokens: 100_000,
    };
    expect(costUsd(sonnet, counts)).toBeCloseTo(0.5 * 3 + 0.4 * 0.3 + 0.1 * 3.75 + 0.2 * 15, 10);
    const mini = CONFIG.prices["openai/gpt-4.1-mini"]!;
    expect(costUsd(mini, counts)).toBeCloseTo(1 * 0.4 + 0.2 * 1.6, 10);
  });
});

describe("usage meter", () => {
  const feed = (meter: UsageMeter, text: string) => {
    meter.push(new TextEncoder().encode(text));
    return meter.finish();
  };

  it("reads Anthropic cache reads and writes, kept when a later event omits them", () => {
    const start = {
      type: "message_start",
      message: {
        usage: {
          input_tokens: 10,
          cache_read_input_tokens: 50,
          cache_creation_input_tokens: 20,
          output_tokens: 1,
        },
      },
    };
    const delta = { type: "message_delta", usage: { input_tokens: 10, output_tokens: 9 } };
    const usage = feed(
      new UsageMeter("anthropic", "text/event-stream"),
      `data: ${JSON.stringify(start)}\n\ndata: ${JSON.stringify(delta)}\n\n`,
    );
    expect(usage).toEqual({
      inputTokens: 80,
      outputTokens: 9,
      cacheReadTokens: 50,
      cacheWriteTokens: 20,
    });
  });

  it("reads OpenAI cached prompt tokens", () => {
    const body = {
      usage: {
        prompt_tokens: 100,
        completion_tokens: 7,
        prompt_tokens_details: { cached_tokens: 64 },
      },
    };
    expect(feed(new UsageMeter("openai", "application/json"), JSON.stringify(body))).toEqual({
      inputTokens: 100,
      outputTokens: 7,
      cacheReadTokens: 64,
      cacheWriteTokens: 0,
    });
  });
});

describe("usage report", () => {
  let store: Store;
  let audit: AuditLog;
  beforeEach(async () => {
    store = await createStore({
      driver: "sqlite",
      path: join(mkdtempSync(join(tmpdir(), "lobu-report-")), "r.db"),
    });
    audit = new AuditLog(store, { log: createLogger("test", { level: "silent" }) });
  });
  afterEach(async () => {
    await store.close();
  });

  it("prices each agent, person, provider and model; says 'no price' rather than 0", async () => {
    const at = Date.parse("2026-03-14T10:00:00Z");
    const call = (
      userKey: string,
      provider: string,
      model: string,
      inputTokens: number,
      outputTokens: number,
    ) =>
      audit.usage({
        at,
        agentId: "default",
        userKey,
        provider,
        model,
        inputTokens,
        outputTokens,
        status: 200,
      });
    await call("api::ann", "anthropic", "claude-sonnet-4-5", 1_000_000, 100_000);
    await call("api::ann", "anthropic", "claude-sonnet-4-5", 1_000_000, 100_000);
    await call("api::ann", "openai", "local:llama3:8b", 5000, 500);
    await audit.usage({
      ...{ at: at + 86_400_000, agentId: "default", userKey: "api::bob" },
      provider: "openai",
      model: "gpt-4.1-mini",
      inputTokens: 1_000_000,
      outputTokens: 0,
      status: 200,
    });
    // A counter written before models were counted is still reported.
    await store.kv.incr("usage:2026-03-01:default:api::old:anthropic:in", 40);
    await store.kv.incr("usage:2026-03-01:default:api::old:anthropic:req", 1);

    const budgets = new Budgets({ kv: store.kv, config: CONFIG, now: () => at });
    budgets.record({
      agentId: "default",
      userKey: "api::ann",
      inputTokens: 30_000,
      outputTokens: 0,
    });
    const report = await usageReport({
      usageTotals: (d) => audit.usageTotals(d),
      agentIds: async () => ["default"],
      budgets,
      prices: CONFIG.prices,
    });
    expect(report.currency).toBe("USD");
    expect(report.totals).toContainEqual({
      agentId: "default",
      userKey: "api::ann",
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      inputTokens: 2_000_000,
      outputTokens: 200_000,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      requests: 2,
      costUsd: expect.closeTo(2 * 3 + 0.2 * 15, 10),
    });
    expect(report.totals).toContainEqual(
      expect.objectContaining({ model: "local:llama3:8b", requests: 1, costUsd: null }),
    );
    expect(report.totals).toContainEqual(
      expect.objectContaining({ userKey: "api::old", model: "", inputTokens: 40, costUsd: null }),
    );
    expect(report.costUsd).toBeCloseTo(9 + 0.4, 10);
    expect(report.unpriced).toEqual(["anthropic/(model not recorded)", "openai/local:llama3:8b"]);
    expect(report.daily.map((r) => r.day)).toEqual([
      "2026-03-15",
      "2026-03-14",
      "2026-03-14",
      "2026-03-01",
    ]);
    expect(report.budgets).toEqual([
      expect.objectContaining({
        agentId: "default",
        userKey: "api::ann",
        remaining: { tokensToday: 70_000, tokensThisMonth: null, requestsLastMinute: null },
      }),
    ]);
    const since = await usageReport(
      {
        usageTotals: (d) => audit.usageTotals(d),
        agentIds: async () => [],
        budgets,
        prices: CONFIG.prices,
      },
      "2026-03-15",
    );
    expect(since.totals.map((t) => t.userKey)).toEqual(["api::bob"]);
  });
});
