import { randomBytes } from "node:crypto";
import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type RecordedRequest,
  type SlackEmulator,
  startGatewayProcess,
  startMockLlm,
  startSlackEmulator,
  startTelegramEmulator,
  type TelegramEmulator,
} from "@lobu/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../store/contract.ts";

/**
 * Schedules end to end: real `lobu run` processes, the Slack emulator, the
 * mock LLM scripting the agent's tool calls. A reminder set in a Slack thread
 * survives a killed gateway and fires once into that thread after the
 * restart; two gateways sharing Redis fire a reminder once; bad input is
 * refused to the model with errors that say what to send instead.
 */

const KEY = "sk-ant-schedules-e2e-0123456789abcdef";
const SLACK_TEAM = "T0SCHED";
const SLACK_SECRET = "slack-signing-secret-schedules";
const SLACK_TOKEN = "xoxb-7777-8888-schedules";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `lobu-test:${randomBytes(6).toString("hex")}:`;

let llm: MockLlm;
let slack: SlackEmulator;
let tg: TelegramEmulator;
const TG_TOKEN = "7000000009:AAschedules-test-token";
let gw: GatewayProcess;
const others: GatewayProcess[] = [];

/** The tool results the model got back for the round after a request whose last user text has `text`. */
function toolResults(text: string): RecordedRequest["toolResults"] {
  return llm.requests.filter((r) => r.lastUserText.includes(text)).at(-1)?.toolResults ?? [];
}

function slackToml(): string {
  return [
    "[sandbox]",
    'idle_timeout = "10m"',
    "[schedules]",
    'poll_interval = "200ms"',
    "[platforms.slack]",
    'stream_interval = "200ms"',
    "[platforms.telegram]",
    'mode = "polling"',
  ].join("\n");
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: KEY });
  slack = await startSlackEmulator({
    signingSecret: SLACK_SECRET,
    botToken: SLACK_TOKEN,
    teamId: SLACK_TEAM,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im"],
  });
  tg = await startTelegramEmulator({
    botToken: TG_TOKEN,
    botUsername: "lobu_sched_bot",
    rateLimits: false,
  });
  gw = await startGatewayProcess({
    toml: slackToml(),
    env: {
      ANTHROPIC_API_KEY: KEY,
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: undefined,
      SLACK_BOT_TOKEN: SLACK_TOKEN,
      SLACK_SIGNING_SECRET: SLACK_SECRET,
      SLACK_API_URL: slack.apiUrl,
      TELEGRAM_BOT_TOKEN: TG_TOKEN,
      TELEGRAM_API_ROOT: tg.url,
    },
  });
  slack.eventsUrl = `${gw.url}/slack/events`;
});

afterAll(async () => {
  await gw?.stop();
  for (const o of others) await o.stop();
  await slack?.close();
  await tg?.close();
  await llm?.close();
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${PREFIX}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
  await redis.quit();
});

describe("a reminder set in a Slack thread", () => {
  it("fires once into that thread after the gateway was killed and started again", async () => {
    const channel = slack.addChannel({ name: "ops" });
    const parent = await slack.userMessage({
      user: "UALICE",
      channel: channel.id,
      text: "Deploy checklist for Friday",
    });
    const dueAt = new Date(Date.now() + 8_000).toISOString();
    llm.when((r) => r.lastUserText.includes("remind me to stretch"), {
      toolCalls: [{ name: "schedule", input: { text: "Remind them to stretch", at: dueAt } }],
    });
    llm.when((r) => r.lastUserText.includes("remind me to stretch"), { text: "Reminder set." });
    await slack.mention({
      user: "UALICE",
      channel: channel.id,
      text: "remind me to stretch",
      threadTs: parent.ts,
    });
    await slack.waitFor(
      () =>
        slack
          .messages(channel.id, { threadTs: parent.ts })
          .find((m) => m.text.includes("Reminder set.")),
      { timeoutMs: 60_000, description: "the agent's answer" },
    );
    const [result] = toolResults("remind me to stretch");
    expect(result?.isError).toBe(false);
    const scheduleId = /Scheduled (sch_\w+)/.exec(result!.content)?.[1];
    expect(scheduleId).toBeDefined();

    // The gateway dies before the reminder is due, and stays down past it.
    await gw.kill("SIGKILL");
    await waitFor(() => Date.now() > Date.parse(dueAt) + 1_000, "the due time to pass", 30_000);
    await gw.restart();

    const fired = (m: { text: string }) => m.text.includes(`[scheduled: reminder ${scheduleId}`);
    // The whole reply: while it streams, its first edits hold only the start.
    const reply = await slack.waitFor(
      () =>
        slack
          .messages(channel.id, { threadTs: parent.ts })
          .find((m) => fired(m) && m.text.includes("Remind them to stretch")),
      { timeoutMs: 60_000, description: "the reminder's turn in the thread" },
    );
    // Posted in the original thread, by a turn of alice's that carried the reminder's text.
    expect(reply.threadTs).toBe(parent.ts);
    expect(reply.text).toContain("Remind them to stretch");
    const asked = llm.requests.find((r) => r.lastUserText.includes(`reminder ${scheduleId}`));
    expect(asked?.lastUserText).toMatch(/set by this person\] Remind them to stretch$/);
    // Done: gone from alice's schedules; more passes of the scheduler fire nothing more.
    await waitFor(async () => {
      const res = await gw.api("/api/v1/agents/default/schedules");
      return ((await res.json()) as { schedules: unknown[] }).schedules.length === 0;
    }, "the reminder to be done");
    await new Promise((r) => setTimeout(r, 1_000));
    expect(slack.messages(channel.id).filter(fired)).toHaveLength(1);
  });
});

describe("a reminder set in a Telegram forum topic", () => {
  it("fires into that topic", async () => {
    const eve = { id: 2005, first_name: "Eve", username: "eve" };
    const forum = { id: -100900, type: "supergroup" as const, title: "Forum", is_forum: true };
    // The emulator learns of a chat from its first message.
    tg.userSends({ chat: forum, from: eve, text: "/help" });
    await tg.waitFor(() => tg.messages(forum.id).length > 0, { timeoutMs: 30_000 });
    const topic = tg.createForumTopic({ chatId: forum.id, name: "Chores", from: eve });
    llm.when((r) => r.lastUserText.includes("remind me to water the plants"), {
      toolCalls: [{ name: "schedule", input: { text: "Water the plants", in: "2s" } }],
    });
    llm.when((r) => r.lastUserText.includes("remind me to water the plants"), {
      text: "Will remind you.",
    });
    tg.userSends({
      chat: forum,
      from: eve,
      text: "@lobu_sched_bot remind me to water the plants",
      messageThreadId: topic,
    });
    const reply = await tg.waitFor(
      () =>
        tg
          .messages(forum.id, { threadId: topic })
          .find(
            (m) => m.text?.includes("[scheduled: reminder") && m.text.includes("Water the plants"),
          ),
      { timeoutMs: 60_000, description: "the reminder's turn in the topic" },
    );
    expect(reply.threadId).toBe(topic);
  });
});

describe("bad input", () => {
  it("is refused to the model with errors that say what to send instead, and nothing is stored", async () => {
    const calls = [
      { cron: "*/5 * * * *", text: "ping" },
      { at: "2020-01-01T09:00", text: "too late" },
      { in: "1h", timezone: "Mars/Olympus", text: "where?" },
      { in: "1h", text: "x".repeat(5_000) },
    ];
    llm.when((r) => r.lastUserText.includes("schedule garbage"), {
      toolCalls: calls.map((input) => ({ name: "schedule", input })),
    });
    llm.when((r) => r.lastUserText.includes("schedule garbage"), { text: "Could not." });
    const im = slack.imChannel("UBOB");
    await slack.dm({ user: "UBOB", text: "schedule garbage" });
    await slack.waitFor(() => slack.messages(im.id).find((m) => m.text.includes("Could not.")), {
      timeoutMs: 60_000,
      description: "the agent's answer",
    });
    const results = toolResults("schedule garbage");
    expect(results).toHaveLength(4);
    expect(results.every((r) => r.isError)).toBe(true);
    expect(results[0]!.content).toMatch(
      /runs every 5m at times; recurring schedules may run at most every 1h\. Choose a less frequent pattern/,
    );
    expect(results[1]!.content).toMatch(
      /2020-01-01T09:00 is in the past.*Pick a time in the future/,
    );
    expect(results[2]!.content).toMatch(
      /"Mars\/Olympus" is not a time zone\. Use an IANA time zone/,
    );
    // The worker checks the tool's schema first (the gateway checks it again: see test/schedules).
    expect(results[3]!.content).toMatch(/text: must not have more than 2000 characters/);
    const res = await gw.api("/api/v1/agents/default/schedules");
    expect(((await res.json()) as { schedules: unknown[] }).schedules).toEqual([]);
  });
});

describe("two gateways sharing Redis", () => {
  it("fire a reminder once", async () => {
    const masterKey = randomBytes(32).toString("base64");
    const toml = [
      "[store]",
      'driver = "redis"',
      `redis_url = "${REDIS_URL}"`,
      `key_prefix = "${PREFIX}"`,
      "[sandbox]",
      'idle_timeout = "10m"',
      "[schedules]",
      'poll_interval = "100ms"',
    ].join("\n");
    const env = {
      ANTHROPIC_API_KEY: KEY,
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: undefined,
      LOBU_MASTER_KEY: masterKey,
    };
    const a = await startGatewayProcess({ toml, env });
    others.push(a);
    const b = await startGatewayProcess({ toml, env });
    others.push(b);

    llm.when((r) => r.lastUserText === "remind me in a moment", {
      toolCalls: [{ name: "schedule", input: { text: "Time for tea", in: "3s" } }],
    });
    llm.when((r) => r.lastUserText === "remind me in a moment", { text: "Will do." });
    const res = await a.api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user: "carol", channel: "kitchen", text: "remind me in a moment" }),
    });
    const conversationId = res.headers.get("x-lobu-conversation-id")!;
    await collectEvents(res);

    const history = async (on: GatewayProcess) => {
      const r = await on.api(`/api/v1/conversations/${conversationId}/messages`);
      return ((await r.json()) as { messages: { role: string; text: string }[] }).messages;
    };
    const isRun = (m: { role: string; text: string }) =>
      m.role === "user" && m.text.startsWith("[scheduled: reminder");
    await waitFor(
      async () =>
        (await history(b)).some((m) => m.role === "assistant" && m.text.includes("Time for tea")),
      "the reminder's turn",
      60_000,
    );
    await waitFor(async () => {
      const r = await b.api("/api/v1/agents/default/schedules");
      return ((await r.json()) as { schedules: unknown[] }).schedules.length === 0;
    }, "the reminder to be done");
    // Both gateways keep looking (every 100 ms): still one run.
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await history(a)).filter(isRun)).toHaveLength(1);
    expect(a.child.exitCode).toBeNull();
    expect(b.child.exitCode).toBeNull();
  });
});
