import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isLobuError, parseConfig } from "@lobu/core";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createStore, type Store } from "../../src/store/index.ts";
import { Budgets, budgetsFor, type Refusal } from "../../src/usage/budgets.ts";
import { formatWait, periodEnd } from "../../src/usage/periods.ts";

/**
 * Budget arithmetic on a real store with an injected clock: UTC day and month
 * periods and their resets, the rolling minute, per-person against per-agent
 * limits, agent overrides, and one notice per period.
 */

const CONFIG = parseConfig(`
[budgets.per_user]
tokens_per_day = 1000
tokens_per_month = 5000
requests_per_minute = 2

[agents.big.budgets.per_user]
tokens_per_day = 10000
requests_per_minute = "unlimited"

[agents.free.budgets.per_user]
tokens_per_day = "unlimited"
tokens_per_month = "unlimited"
requests_per_minute = "unlimited"

[agents.team.budgets.per_agent]
tokens_per_day = 1500
requests_per_minute = 3
`);

const at = (iso: string) => Date.parse(iso);
let store: Store;
let now: number;
let noticed: { refusal: Refusal; where: string }[];
let budgets: Budgets;

function budgetsOn(s: Store) {
  return new Budgets({
    kv: s.kv,
    config: CONFIG,
    now: () => now,
    onExceeded: (refusal, where) => noticed.push({ refusal, where }),
  });
}

async function dropKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/** Let fire-and-forget notices land. */
const settle = () => new Promise((r) => setTimeout(r, 50));

beforeEach(async () => {
  store = await createStore({
    driver: "sqlite",
    path: join(mkdtempSync(join(tmpdir(), "lobu-budgets-")), "b.db"),
  });
  noticed = [];
  now = at("2026-03-14T22:30:00.000Z");
  budgets = budgetsOn(store);
});
afterEach(async () => {
  await store.close();
});

describe("limits", () => {
  it("take an agent's own limits over the installation's, limit by limit; 'unlimited' lifts one", () => {
    expect(budgetsFor(CONFIG, "default")).toEqual({
      per_user: {
        tokens_per_day: { value: 1000, section: "[budgets.per_user]" },
        tokens_per_month: { value: 5000, section: "[budgets.per_user]" },
        requests_per_minute: { value: 2, section: "[budgets.per_user]" },
      },
      per_agent: {},
    });
    expect(budgetsFor(CONFIG, "big").per_user).toEqual({
      tokens_per_day: { value: 10000, section: "[agents.big.budgets.per_user]" },
      tokens_per_month: { value: 5000, section: "[budgets.per_user]" },
    });
    expect(budgetsFor(CONFIG, "free")).toEqual({ per_user: {}, per_agent: {} });
    expect(budgetsFor(CONFIG, "team").per_agent).toEqual({
      tokens_per_day: { value: 1500, section: "[agents.team.budgets.per_agent]" },
      requests_per_minute: { value: 3, section: "[agents.team.budgets.per_agent]" },
    });
  });

  it("refuse zero, fractions and unknown keys in lobu.toml", () => {
    expect(() => parseConfig("[budgets.per_user]\ntokens_per_day = 0")).toThrow(/tokens_per_day/);
    expect(() => parseConfig("[budgets.per_user]\ntokens_per_day = 1.5")).toThrow(/tokens_per_day/);
    expect(() => parseConfig("[budgets.per_user]\ntokens_per_hour = 5")).toThrow(/tokens_per_hour/);
    expect(() => parseConfig('[prices."claude"]\ninput = 1\noutput = 2')).toThrow(/provider/);
  });
});

describe("periods", () => {
  it("end at the next 00:00 UTC and on the 1st of the next UTC month (leap years, year ends)", () => {
    expect(new Date(periodEnd("day", at("2026-03-14T22:30:00Z"))).toISOString()).toBe(
      "2026-03-15T00:00:00.000Z",
    );
    expect(new Date(periodEnd("day", at("2026-12-31T23:59:59.999Z"))).toISOString()).toBe(
      "2027-01-01T00:00:00.000Z",
    );
    expect(new Date(periodEnd("month", at("2028-02-28T12:00:00Z"))).toISOString()).toBe(
      "2028-03-01T00:00:00.000Z",
    );
    expect(new Date(periodEnd("month", at("2026-12-01T00:00:00Z"))).toISOString()).toBe(
      "2027-01-01T00:00:00.000Z",
    );
  });

  it("format waits for people", () => {
    expect(formatWait(0)).toBe("1 s");
    expect(formatWait(41_200)).toBe("42 s");
    expect(formatWait(5 * 60_000)).toBe("5 min");
    expect(formatWait(3 * 3_600_000 + 12 * 60_000)).toBe("3 h 12 min");
    expect(formatWait(2 * 3_600_000)).toBe("2 h");
    expect(formatWait(12 * 86_400_000 + 3 * 3_600_000)).toBe("12 d 3 h");
  });
});

describe("token budgets", () => {
  const ann = { agentId: "default", userKey: "slack:T1:ANN" };
  const bob = { agentId: "default", userKey: "slack:T1:BOB" };

  it("admit calls until a person's daily budget is used up, then refuse until 00:00 UTC", async () => {
    budgets.record({ ...ann, inputTokens: 600, outputTokens: 300 });
    expect(await budgets.admit(ann)).toBeNull();
    // The admitted call takes the person over the budget; the next one is refused.
    budgets.record({ ...ann, inputTokens: 150, outputTokens: 50 });
    const refusal = await budgets.admit(ann);
    expect(refusal).toMatchObject({
      scope: "per_user",
      limit: "tokens_per_day",
      value: 1000,
      used: 1100,
      resetsAt: at("2026-03-15T00:00:00Z"),
      message:
        'You have used your daily budget of 1,000 tokens for agent "default"; it resets at 00:00 UTC (in 1 h 30 min)',
      hint: "Ask an admin to raise tokens_per_day in [budgets.per_user] of lobu.toml.",
    });
    // Someone else on the same agent is not affected.
    expect(await budgets.admit(bob)).toBeNull();
    now = at("2026-03-14T23:59:59.999Z");
    expect(await budgets.admit(ann)).not.toBeNull();
    now = at("2026-03-15T00:00:00.000Z");
    expect(await budgets.admit(ann)).toBeNull();
  });

  it("refuse on the monthly budget until the 1st, and name it when both are used up", async () => {
    for (const day of ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"]) {
      now = at(`${day}T23:00:00Z`);
      budgets.record({ ...ann, inputTokens: 1000, outputTokens: 0 });
    }
    const refusal = await budgets.admit(ann);
    expect(refusal).toMatchObject({
      limit: "tokens_per_month",
      used: 5000,
      message:
        'You have used your monthly budget of 5,000 tokens for agent "default"; it resets on 2026-04-01 at 00:00 UTC (in 1 h)',
    });
    now = at("2026-04-01T00:00:00Z");
    expect(await budgets.admit(ann)).toBeNull();
  });

  it("let an agent override the installation's limit, or lift it", async () => {
    const annBig = { agentId: "big", userKey: ann.userKey };
    budgets.record({ ...annBig, inputTokens: 4000, outputTokens: 0 });
    expect(await budgets.admit(annBig)).toBeNull();
    budgets.record({ ...annBig, inputTokens: 1000, outputTokens: 0 });
    // The day limit is the agent's 10,000, but the month's 5,000 still comes from [budgets].
    expect(await budgets.admit(annBig)).toMatchObject({
      limit: "tokens_per_month",
      hint: "Ask an admin to raise tokens_per_month in [budgets.per_user] of lobu.toml.",
    });
    const annFree = { agentId: "free", userKey: ann.userKey };
    budgets.record({ ...annFree, inputTokens: 1_000_000, outputTokens: 0 });
    expect(await budgets.admit(annFree)).toBeNull();
    // Budgets are per agent: ann's use of other agents does not count on "default".
    expect(await budgets.admit(ann)).toBeNull();
  });

  it("share an agent's budget between everyone who uses it", async () => {
    const carl = { agentId: "team", userKey: "telegram::1" };
    const dora = { agentId: "team", userKey: "telegram::2" };
    budgets.record({ ...carl, inputTokens: 700, outputTokens: 0 });
    expect(await budgets.admit(dora)).toBeNull();
    budgets.record({ ...dora, inputTokens: 800, outputTokens: 0 });
    const refusal = await budgets.admit(carl);
    expect(refusal).toMatchObject({ scope: "per_agent", used: 1500 });
    expect(refusal?.userKey).toBeUndefined();
    expect(refusal?.message).toBe(
      'Agent "team" has used its daily budget of 1,500 tokens, shared by everyone who uses it; it resets at 00:00 UTC (in 1 h 30 min)',
    );
    expect(await budgets.admit(dora)).toMatchObject({ scope: "per_agent" });
    // Usage of unknown people still counts for the agent.
    expect(await budgets.admit({ agentId: "team" })).toMatchObject({ scope: "per_agent" });
  });

  it("refuse a turn before it starts with budget_exceeded, and notice once per period", async () => {
    budgets.record({ ...ann, inputTokens: 1000, outputTokens: 0 });
    const refused = await budgets.checkTurn(ann).catch((err: unknown) => err);
    expect(isLobuError(refused)).toBe(true);
    expect(refused).toMatchObject({
      code: "budget_exceeded",
      status: 429,
      message: expect.stringContaining("daily budget of 1,000 tokens"),
      hint: expect.stringContaining("[budgets.per_user]"),
    });
    await budgets.admit(ann);
    await budgets.checkTurn(ann).catch(() => {});
    await settle();
    expect(noticed).toHaveLength(1);
    expect(noticed[0]).toMatchObject({
      where: "turn",
      refusal: { limit: "tokens_per_day", userKey: ann.userKey },
    });
    // The next day is a new period: a new notice when it is used up again.
    now = at("2026-03-15T09:00:00Z");
    budgets.record({ ...ann, inputTokens: 1000, outputTokens: 0 });
    await budgets.admit(ann);
    await budgets.admit(ann);
    await settle();
    expect(noticed.map((n) => n.where)).toEqual(["turn", "model_call"]);
  });
});

describe("requests per minute", () => {
  const ann = { agentId: "default", userKey: "api::ann" };

  it("count a rolling minute: refused calls do not count, slots free up as old calls leave", async () => {
    const t0 = at("2026-03-14T10:00:00.000Z");
    now = t0;
    expect(await budgets.admit(ann)).toBeNull();
    now = t0 + 10_000;
    expect(await budgets.admit(ann)).toBeNull();
    now = t0 + 20_000;
    const refusal = await budgets.admit(ann);
    expect(refusal).toMatchObject({
      limit: "requests_per_minute",
      used: 2,
      resetsAt: t0 + 60_000,
      message:
        'You have reached the limit of 2 model requests per minute for agent "default"; try again in 40 s',
    });
    // Peeking before a turn refuses too, without taking a slot.
    await expect(budgets.checkTurn(ann)).rejects.toMatchObject({ code: "budget_exceeded" });
    // A fixed calendar minute would have reset at 10:01:00; the rolling one has not yet.
    now = t0 + 59_999;
    expect(await budgets.admit(ann)).not.toBeNull();
    now = t0 + 60_000;
    expect(await budgets.admit(ann)).toBeNull();
    expect(await budgets.admit(ann)).not.toBeNull();
    expect(await budgets.admit({ agentId: "default", userKey: "api::bob" })).toBeNull();
  });

  it("let exactly the limit through when calls arrive at once", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        budgets.admit({ agentId: "team", userKey: `api::${i}` }),
      ),
    );
    expect(results.filter((r) => r === null)).toHaveLength(3);
    expect(results.find((r) => r !== null)).toMatchObject({
      scope: "per_agent",
      message: expect.stringContaining('Agent "team" has reached its limit of 3 model requests'),
    });
  });
});

describe("across gateways", () => {
  it("share counters through one Redis store", async () => {
    const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    const prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
    const one = await createStore({ driver: "redis", url, prefix });
    const two = await createStore({ driver: "redis", url, prefix });
    try {
      const a = budgetsOn(one);
      const b = budgetsOn(two);
      const ann = { agentId: "default", userKey: "api::ann" };
      a.record({ ...ann, inputTokens: 999, outputTokens: 1 });
      // The record is written before `a` admits anything; `b` reads it from Redis.
      expect(await a.admit(ann)).toMatchObject({ limit: "tokens_per_day" });
      expect(await b.admit(ann)).toMatchObject({ limit: "tokens_per_day", used: 1000 });
      const bob = { agentId: "default", userKey: "api::bob" };
      expect(await a.admit(bob)).toBeNull();
      expect(await b.admit(bob)).toBeNull();
      expect(await a.admit(bob)).toMatchObject({ limit: "requests_per_minute" });
    } finally {
      await one.close();
      await two.close();
      await dropKeys(url, prefix);
    }
  });
});

describe("report", () => {
  it("lists each agent budget and each person's, with what is left and when it resets", async () => {
    budgets.record({ agentId: "default", userKey: "api::ann", inputTokens: 400, outputTokens: 0 });
    budgets.record({ agentId: "team", userKey: "api::bob", inputTokens: 1600, outputTokens: 0 });
    await budgets.admit({ agentId: "default", userKey: "api::ann" });
    const rows = await budgets.report(["default", "team", "free"]);
    expect(rows).toContainEqual({
      agentId: "default",
      userKey: "api::ann",
      limits: { tokensPerDay: 1000, tokensPerMonth: 5000, requestsPerMinute: 2 },
      used: { tokensToday: 400, tokensThisMonth: 400, requestsLastMinute: 1 },
      remaining: { tokensToday: 600, tokensThisMonth: 4600, requestsLastMinute: 1 },
      exhausted: false,
      resets: { day: "2026-03-15T00:00:00.000Z", month: "2026-04-01T00:00:00.000Z" },
    });
    expect(rows).toContainEqual(
      expect.objectContaining({
        agentId: "team",
        userKey: null,
        limits: { tokensPerDay: 1500, tokensPerMonth: null, requestsPerMinute: 3 },
        remaining: { tokensToday: 0, tokensThisMonth: null, requestsLastMinute: 3 },
        exhausted: true,
      }),
    );
    // bob on "team" has the installation's per-person budget too.
    expect(rows).toContainEqual(
      expect.objectContaining({ agentId: "team", userKey: "api::bob", exhausted: true }),
    );
    expect(rows.filter((r) => r.agentId === "free")).toEqual([]);
  });
});
