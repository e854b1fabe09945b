import {
  type GatewayProcess,
  type MockLlm,
  type SlackEmulator,
  type SlackMessage,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROVIDER_KEY, slowText, startSlackGateway, WAIT } from "./helpers.ts";

/**
 * Slack's agent surface end to end, through the Slack emulator: the
 * assistant pane (suggested prompts, a title from the first message, a
 * status line while the agent works) and native streaming messages
 * (chat.startStream / appendStream / stopStream) with the Stop buttons
 * beside them.
 */

const SIGNING_SECRET = "slack-signing-secret-agent-surface";
const BOT_TOKEN = "xoxb-9999-0000-agent";
const CHANNEL = "C0AGENT001";
/** A channel bound to an agent with its own name and picture. */
const PERSONA_CHANNEL = "C0PERSONA1";

let llm: MockLlm;
let slack: SlackEmulator;
let gw: GatewayProcess;

const callsOf = (method: string) => slack.calls.filter((c) => c.method === method);

function stopButtons(m: SlackMessage): string[] {
  return (m.blocks ?? [])
    .filter((b) => (b as { type?: string }).type === "actions")
    .flatMap((b) => (b as { elements: { action_id: string }[] }).elements.map((e) => e.action_id))
    .filter((id) => id.startsWith("lobu-stop"));
}

function streamed(channel: string, threadTs: string, text: RegExp): Promise<SlackMessage> {
  return slack.waitFor(
    () =>
      slack
        .messages(channel, { threadTs })
        .find(
          (m) =>
            m.postedVia === "chat.startStream" && m.streaming === "completed" && text.test(m.text),
        ),
    { ...WAIT, description: `a completed stream matching ${text}` },
  );
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im", "message.channels", "assistant_thread_started"],
  });
  slack.addChannel({ id: CHANNEL, name: "agents" });
  slack.addChannel({ id: PERSONA_CHANNEL, name: "helpdesk" });
  gw = await startSlackGateway({
    slack,
    llm,
    toml: [
      "[sandbox]",
      'idle_timeout = "10m"',
      "",
      "[platforms.slack]",
      'stream_interval = "200ms"',
      "native_streaming = true",
      'suggested_prompts = [{ title = "Plan my day", message = "Plan my day, please." }]',
      "",
      "[agents.helper]",
      'persona = { name = "Helper Bot", icon_url = "https://example.com/helper.png" }',
      "",
      `[channels."slack:${slack.teamId}:${PERSONA_CHANNEL}"]`,
      'agent = "helper"',
    ].join("\n"),
  });
});

afterAll(async () => {
  await gw?.stop();
  await slack?.close();
  await llm?.close();
});

describe("the assistant pane", () => {
  it("offers the suggested prompts, titles the thread, and shows the status while working", async () => {
    const user = "UPANE00001";
    const pane = await slack.openAssistantThread({ user, fromChannel: CHANNEL });
    expect(pane.delivery?.status).toBe(200);
    await slack.waitFor(() => slack.assistantThread(pane.channel, pane.threadTs)?.prompts, {
      ...WAIT,
      description: "the suggested prompts",
    });
    expect(slack.assistantThread(pane.channel, pane.threadTs)?.prompts).toEqual([
      { title: "Plan my day", message: "Plan my day, please." },
    ]);

    const answer = "Here is your plan: write, review, ship.";
    llm.when((r) => r.lastUserText === "Plan my day, please.", slowText(answer, 5, 100));
    await slack.dm({ user, text: "Plan my day, please.", threadTs: pane.threadTs });
    const reply = await streamed(pane.channel, pane.threadTs, /Here is your plan/);
    expect(reply.text).toBe(answer);

    const thread = slack.assistantThread(pane.channel, pane.threadTs);
    expect(thread?.title).toBe("Plan my day, please.");
    // "Working" while the agent ran, cleared when it was done.
    expect(thread?.statuses).toContain("is working on it…");
    await slack.waitFor(() => slack.assistantThread(pane.channel, pane.threadTs)?.status === "", {
      ...WAIT,
      description: "the status cleared",
    });
  });
});

describe("native streaming", () => {
  it("streams a reply in a channel thread by appending, naming the person it is for", async () => {
    const answer = "Streaming natively, piece by piece, until the very end.";
    llm.when((r) => r.lastUserText === "stream it natively", slowText(answer, 6, 150));
    const sent = await slack.mention({
      user: "USTREAM001",
      channel: CHANNEL,
      text: "stream it natively",
    });
    const reply = await streamed(CHANNEL, sent.ts, /Streaming natively/);
    expect(reply.text).toBe(answer);
    const start = callsOf("chat.startStream").find((c) => c.args.channel === CHANNEL);
    expect(start?.args).toMatchObject({ recipient_user_id: "USTREAM001" });
    expect(callsOf("chat.appendStream").length).toBeGreaterThan(0);
    // The Stop buttons sat in a message of their own, removed once the reply ended.
    const all = () => slack.messages(CHANNEL, { threadTs: sent.ts, includeDeleted: true });
    expect(all().some((m) => stopButtons(m).length > 0)).toBe(true);
    await slack.waitFor(() => all().every((m) => stopButtons(m).length === 0 || m.deleted), {
      ...WAIT,
      description: "the Stop buttons removed",
    });
  });

  it("a Stop click ends the stream saying who stopped it", async () => {
    const user = "USTREAM002";
    llm.when((r) => r.lastUserText === "stream forever", slowText("word ".repeat(300), 300, 200));
    const sent = await slack.mention({ user, channel: CHANNEL, text: "stream forever" });
    const thread = () => slack.messages(CHANNEL, { threadTs: sent.ts });
    const controls = await slack.waitFor(
      () =>
        thread().some((m) => m.streaming === "in_progress" && m.text.includes("word")) &&
        thread().find((m) => stopButtons(m).length > 0),
      { ...WAIT, description: "a running stream with its Stop buttons" },
    );
    await slack.clickButton({
      user,
      channel: CHANNEL,
      messageTs: controls.ts,
      actionId: stopButtons(controls)[0]!,
    });
    const reply = await streamed(CHANNEL, sent.ts, /⏹️ Stopped by/);
    expect(reply.text).toMatch(/^word/);
  });

  it("streams as the channel's agent: its name and picture on the stream and its Stop buttons", async () => {
    const answer = "Answered by the helper, streamed under its own name.";
    llm.when((r) => r.lastUserText === "persona stream", slowText(answer, 6, 150));
    const sent = await slack.mention({
      user: "USTREAM003",
      channel: PERSONA_CHANNEL,
      text: "persona stream",
    });
    const reply = await streamed(PERSONA_CHANNEL, sent.ts, /Answered by the helper/);
    expect(reply).toMatchObject({
      username: "Helper Bot",
      iconUrl: "https://example.com/helper.png",
    });
    const controls = slack
      .messages(PERSONA_CHANNEL, { threadTs: sent.ts, includeDeleted: true })
      .filter((m) => m.text === "Working…");
    expect(controls.length).toBeGreaterThan(0);
    for (const m of controls) expect(m.username).toBe("Helper Bot");
  });
});
