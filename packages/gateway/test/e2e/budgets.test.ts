import { spawn } from "node:child_process";
import type { AgentEvent } from "@lobu/core";
import type { BudgetUse, UsageRow } from "@lobu/core/views";
import {
  collectEvents,
  type GatewayProcess,
  LOBU_BIN,
  type MockLlm,
  type SlackEmulator,
  startGatewayProcess,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

/**
 * Usage budgets end to end: a real `lobu run`, real sandboxed workers (pi), the
 * mock LLM. A person over their daily budget is told so in the thread before
 * anything starts; a turn that crosses a budget has its next model call refused
 * and the person sees why; the request rate is limited per person; others on
 * the same agent carry on; the usage report prices what was used.
 */

const KEY = "sk-ant-budgets-0123456789abcdef";
const SIGNING_SECRET = "slack-signing-secret-budgets";
const BOT_TOKEN = "xoxb-7777-8888-budgets";
let llm: MockLlm;
let slack: SlackEmulator;
let gw: GatewayProcess;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im"],
  });
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'idle_timeout = "10m"',
      "",
      // Far below one model call: whoever makes a call is over the day's budget after it.
      "[budgets.per_user]",
      "tokens_per_day = 50",
      "",
      "[agents.default]",
      'name = "Assistant"',
      "",
      "[agents.chatty]",
      'name = "Chatty"',
      'model = "unpriced-model"',
      "[agents.chatty.budgets.per_user]",
      'tokens_per_day = "unlimited"',
      "requests_per_minute = 1",
      "",
      '[prices."anthropic/claude-sonnet-4-5"]',
      "input = 3",
      "output = 15",
      "",
      "[platforms.slack]",
      'stream_interval = "200ms"',
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: KEY,
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: undefined,
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: slack.apiUrl,
      // The relay logs each refusal at info: the test counts them (no retries).
      LOBU_LOG_LEVEL: "info",
    },
  });
  slack.eventsUrl = `${gw.url}/slack/events`;
});

afterAll(async () => {
  await gw?.stop();
  await slack?.close();
  await llm?.close();
});

async function send(agent: string, user: string, text: string, channel = "dev") {
  const res = await gw.api(`/api/v1/agents/${agent}/messages`, {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel, text }),
  });
  return collectEvents(res);
}

/** Model calls that reached the provider for a message. */
const callsFor = (text: string) => llm.requests.filter((r) => r.lastUserText === text);

function scriptTool(text: string) {
  llm.when(
    (r) => r.lastUserText === text,
    { toolCalls: [{ name: "bash", input: { command: "echo tool-ran" } }] },
    { text: "finished after the tool" },
  );
}

/** Model calls the relay refused over a budget (each one the agent made, retries included). */
const relayRefusals = () => gw.output().split("relay refused: budget").length - 1;

/**
 * relayRefusals once the gateway's log has caught up with a turn that saw at least
 * `atLeast`: the lines are written (synchronously, to a pipe) before the turn's last
 * event, but reach this process through another pipe than the answer, so they can
 * be read after it. A retry's line would be in the same pipe before the turn ended.
 */
async function relayRefusalsOnceLogged(atLeast: number): Promise<number> {
  await vi.waitFor(() => expect(relayRefusals()).toBeGreaterThanOrEqual(atLeast), {
    timeout: 10_000,
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  return relayRefusals();
}

async function sandboxCount(): Promise<number> {
  const res = await gw.api("/api/v1/sandboxes");
  return ((await res.json()) as { sandboxes: unknown[] }).sandboxes.length;
}

async function budgetRecords(limit: string) {
  const res = await gw.api("/api/v1/audit?action=budget.exceeded&limit=100");
  const { records } = (await res.json()) as {
    records: { actor: string; agentId: string; details: { limit: string; refused: string } }[];
  };
  return records.filter((r) => r.details.limit === limit);
}

const DAILY = 'You have used your daily budget of 50 tokens for agent "default"';

describe("token budgets", () => {
  it("refuses the next model call of a turn that used up the person's budget, and says why", async () => {
    scriptTool("use a tool");
    const events = await send("default", "ann", "use a tool");
    // The first call ran (its tool too); the second was refused before reaching the provider.
    expect(events.some((e) => e.type === "tool_result")).toBe(true);
    expect(callsFor("use a tool")).toHaveLength(1);
    // Refused once: the agent did not retry a call the budget refuses.
    expect(await relayRefusalsOnceLogged(1)).toBe(1);
    const last = events.at(-1) as Extract<AgentEvent, { type: "error" }>;
    expect(last.type).toBe("error");
    expect(last.code).toBe("budget_exceeded");
    expect(last.message).toContain(DAILY);
    expect(last.message).toMatch(/it resets at 00:00 UTC \(in \d+ (h|min|s)/);
    expect(last.message).toContain("Ask an admin to raise tokens_per_day in [budgets.per_user]");
  });

  it("refuses the person's next turn before it starts: no sandbox, no model call", async () => {
    const calls = llm.requests.length;
    const sandboxes = await sandboxCount();
    const events = await send("default", "ann", "hello again", "elsewhere");
    expect(events.at(-1)).toMatchObject({
      type: "error",
      code: "budget_exceeded",
      message: expect.stringContaining(DAILY),
    });
    expect(llm.requests.length).toBe(calls);
    expect(await sandboxCount()).toBe(sandboxes);
  });

  it("tells `lobu chat` users the same, with the error code", async () => {
    const child = spawn(
      process.execPath,
      [
        LOBU_BIN,
        "chat",
        ...["--gateway", gw.url, "--token", gw.token, "--user", "ann", "--channel", "dev"],
        ...["--message", "one more"],
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const code = await new Promise((r) => child.on("exit", r));
    expect(code).toBe(1);
    expect(err).toContain(DAILY);
    expect(err).toContain("(budget_exceeded)");
  });

  it("leaves other people on the same agent unaffected", async () => {
    const events = await send("default", "bob", "hi from bob");
    expect(events.at(-1)).toMatchObject({ type: "done", text: "echo: hi from bob" });
  });

  it("says so in the Slack thread", async () => {
    const im = slack.imChannel("UBUDGET");
    await slack.dm({ user: "UBUDGET", text: "first from slack" });
    await slack.waitFor(
      () => slack.messages(im.id).find((m) => m.text?.includes("echo: first from slack")),
      { timeoutMs: 30_000, description: "the first reply" },
    );
    const calls = llm.requests.length;
    await slack.dm({ user: "UBUDGET", text: "second from slack" });
    const refusal = await slack.waitFor(
      () => slack.messages(im.id).find((m) => m.text?.includes("daily budget of 50 tokens")),
      { timeoutMs: 30_000, description: "the budget message" },
    );
    expect(refusal.text).toContain("resets at 00:00 UTC");
    expect(llm.requests.length).toBe(calls);
  });

  it("audits each person's refusals once per period, not per request", async () => {
    const records = await budgetRecords("tokens_per_day");
    expect(records.filter((r) => r.actor === "api::ann")).toHaveLength(1);
    expect(records.find((r) => r.actor === "api::ann")).toMatchObject({
      agentId: "default",
      details: { refused: "model_call" },
    });
    expect(records.filter((r) => r.actor.endsWith(":UBUDGET"))).toHaveLength(1);
    expect(records.some((r) => r.actor === "api::bob")).toBe(false);
  });
});

describe("requests per minute", () => {
  it("refuses a person's model call over the rate, and not someone else's", async () => {
    scriptTool("chatty tool");
    const events = await send("chatty", "carl", "chatty tool");
    expect(callsFor("chatty tool")).toHaveLength(1);
    const refusals = await relayRefusalsOnceLogged(2);
    expect(events.at(-1)).toMatchObject({
      type: "error",
      code: "budget_exceeded",
      message: expect.stringMatching(
        /^You have reached the limit of 1 model request per minute for agent "chatty"; try again in (\d+ s|1 min)\. Ask an admin to raise requests_per_minute in \[agents\.chatty\.budgets\.per_user\]/,
      ),
    });
    expect(refusals).toBe(2);
    const dave = await send("chatty", "dave", "hi from dave");
    expect(dave.at(-1)).toMatchObject({ type: "done", text: "echo: hi from dave" });
    expect(await budgetRecords("requests_per_minute")).toEqual([
      expect.objectContaining({ actor: "api::carl", agentId: "chatty" }),
    ]);
  });
});

describe("usage report", () => {
  it("prices usage from [prices], says 'no price' for unpriced models, and shows budgets", async () => {
    const res = await gw.api("/api/v1/usage");
    expect(res.status).toBe(200);
    const report = (await res.json()) as {
      currency: string;
      costUsd: number;
      unpriced: string[];
      totals: UsageRow[];
      usage: (UsageRow & { day: string })[];
      budgets: BudgetUse[];
    };
    expect(report.currency).toBe("USD");
    const bob = report.totals.find((t) => t.userKey === "api::bob")!;
    expect(bob).toMatchObject({
      agentId: "default",
      provider: "anthropic",
      model: "claude-sonnet-4-5",
      requests: 1,
    });
    expect(bob.inputTokens).toBeGreaterThan(0);
    expect(bob.costUsd).toBeCloseTo((bob.inputTokens * 3 + bob.outputTokens * 15) / 1e6, 12);
    const dave = report.totals.find((t) => t.userKey === "api::dave")!;
    expect(dave).toMatchObject({ model: "unpriced-model", costUsd: null });
    expect(report.unpriced).toEqual(["anthropic/unpriced-model"]);
    const priced = report.totals.filter((t) => t.costUsd !== null);
    expect(report.costUsd).toBeCloseTo(
      priced.reduce((sum, t) => sum + (t.costUsd ?? 0), 0),
      12,
    );
    expect(report.usage.every((r) => /^\d{4}-\d{2}-\d{2}$/.test(r.day))).toBe(true);
    expect(report.budgets).toContainEqual(
      expect.objectContaining({
        agentId: "default",
        userKey: "api::ann",
        limits: { tokensPerDay: 50, tokensPerMonth: null, requestsPerMinute: null },
        remaining: { tokensToday: 0, tokensThisMonth: null, requestsLastMinute: null },
        exhausted: true,
      }),
    );
    expect(report.budgets).toContainEqual(
      expect.objectContaining({
        agentId: "chatty",
        userKey: "api::carl",
        limits: { tokensPerDay: null, tokensPerMonth: null, requestsPerMinute: 1 },
        exhausted: false,
      }),
    );
  });
});
