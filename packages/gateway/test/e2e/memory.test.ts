import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type RecordedRequest,
  type SlackEmulator,
  startGatewayProcess,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSettings, type SettingsSession } from "../settings/helpers.ts";

/**
 * Memory end to end: a real `lobu run` with the Slack emulator and the mock
 * LLM scripting `remember` and `recall`. What alice saves in a channel she
 * finds in her DM; bob, in the same channel and the same shared sandbox
 * (group_routing per-channel), never finds it; alice deletes it from her
 * settings page and the agent no longer finds it; the settings API answers
 * only with her own memory.
 */

const KEY = "sk-ant-memory-e2e-0123456789abcdef";
const SLACK_TEAM = "T0MEM";
const SLACK_SECRET = "slack-signing-secret-memory";
const SLACK_TOKEN = "xoxb-9999-1111-memory";

let llm: MockLlm;
let slack: SlackEmulator;
let gw: GatewayProcess;

function resultsFor(text: string): RecordedRequest["toolResults"] {
  return llm.requests.filter((r) => r.lastUserText.includes(text)).at(-1)?.toolResults ?? [];
}

/** Script one tool call for a message and the answer after it; send the message; wait for the answer. */
async function turn(
  send: () => Promise<unknown>,
  channel: string,
  text: string,
  call: { name: string; input: unknown },
  /** The sender approves the call on its card first (others' words are in the context). */
  approveAs?: string,
): Promise<RecordedRequest["toolResults"]> {
  const done = `done: ${text}`;
  llm.when((r) => r.lastUserText.includes(text), { toolCalls: [call] });
  llm.when((r) => r.lastUserText.includes(text), { text: done });
  const before = slack.messages(channel).length;
  await send();
  if (approveAs) {
    const approveId = (m: { blocks?: unknown[] }) =>
      JSON.stringify(m.blocks ?? []).match(/"action_id":"([^"]+:approve)"/)?.[1];
    const card = await slack.waitFor(
      () =>
        slack
          .messages(channel)
          .slice(before)
          .find((m) => approveId(m)),
      { timeoutMs: 60_000, description: `the approval card for "${text}"` },
    );
    await slack.clickButton({
      user: approveAs,
      channel,
      messageTs: card.ts,
      actionId: approveId(card)!,
    });
  }
  await slack.waitFor(() => slack.messages(channel).find((m) => m.text.includes(done)), {
    timeoutMs: 60_000,
    description: `the answer to "${text}"`,
  });
  return resultsFor(text);
}

async function settingsOf(user: string): Promise<SettingsSession> {
  const im = slack.imChannel(user);
  const before = slack.messages(im.id).length;
  await slack.dm({ user, text: "settings" });
  const msg = await slack.waitFor(
    () =>
      slack
        .messages(im.id)
        .slice(before)
        .find((m) => JSON.stringify(m.blocks ?? []).includes("/settings/claim/")),
    { timeoutMs: 30_000, description: "the settings link" },
  );
  const url = /"url":"([^"]+)"/.exec(JSON.stringify(msg.blocks))![1]!;
  return openSettings(gw, url);
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
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'idle_timeout = "10m"',
      "[agents.default]",
      'group_routing = "per-channel"',
      "[memory]",
      "max_entries = 3",
      "[platforms.slack]",
      'stream_interval = "200ms"',
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: KEY,
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: undefined,
      SLACK_BOT_TOKEN: SLACK_TOKEN,
      SLACK_SIGNING_SECRET: SLACK_SECRET,
      SLACK_API_URL: slack.apiUrl,
    },
  });
  slack.eventsUrl = `${gw.url}/slack/events`;
});

afterAll(async () => {
  await gw?.stop();
  await slack?.close();
  await llm?.close();
});

describe("a person's memory", () => {
  it("is recalled in another channel by the same person, never by another, and deleted from settings", async () => {
    const channel = slack.addChannel({ name: "team" });
    const aliceDm = slack.imChannel("UALICE").id;
    const [saved] = await turn(
      () => slack.mention({ user: "UALICE", channel: channel.id, text: "note my tea" }),
      channel.id,
      "note my tea",
      { name: "remember", input: { text: "Alice drinks green tea, no sugar" } },
      // The channel shares one sandbox: others' words are in it, so remember asks her first.
      "UALICE",
    );
    expect(saved).toMatchObject({
      isError: false,
      content: expect.stringMatching(/^Remembered \(mem_/),
    });

    // Her DM is another channel and another sandbox: the memory is there.
    const [recalled] = await turn(
      () => slack.dm({ user: "UALICE", text: "what do I drink" }),
      aliceDm,
      "what do I drink",
      { name: "recall", input: { query: "tea drink" } },
    );
    expect(recalled?.content).toMatch(
      /mem_\w+ \(saved \d{4}-\d\d-\d\d\): Alice drinks green tea, no sugar/,
    );

    // Bob, in the same channel (the same shared sandbox): his turn reads his own memory, empty.
    const [bobs] = await turn(
      () => slack.mention({ user: "UBOB", channel: channel.id, text: "what tea do I drink" }),
      channel.id,
      "what tea do I drink",
      { name: "recall", input: { query: "tea" } },
    );
    expect(bobs?.content).toBe("Nothing remembered matches.");

    // Alice's settings page shows it (with where it was saved), bob's does not.
    const alice = await settingsOf("UALICE");
    const listed = (await (await alice.call("GET", "/memory")).json()) as {
      entries: { id: string; text: string; source?: { channelId: string } }[];
      limits: { maxEntries: number };
    };
    expect(listed.entries).toHaveLength(1);
    expect(listed.entries[0]).toMatchObject({
      text: "Alice drinks green tea, no sugar",
      source: { channelId: channel.id },
    });
    expect(listed.limits.maxEntries).toBe(3);
    const bob = await settingsOf("UBOB");
    expect(
      ((await (await bob.call("GET", "/memory")).json()) as { entries: unknown[] }).entries,
    ).toEqual([]);
    // Bob cannot edit or delete alice's entry by its id.
    const id = listed.entries[0]!.id;
    expect((await bob.call("PUT", `/memory/${id}`, { text: "hijacked" })).status).toBe(404);
    expect((await bob.call("DELETE", `/memory/${id}`)).status).toBe(404);
    // A change without the CSRF token is refused.
    expect((await alice.call("DELETE", `/memory/${id}`, undefined, { csrf: false })).status).toBe(
      403,
    );

    // Alice edits it, then deletes it.
    const edited = await alice.call("PUT", `/memory/${id}`, { text: "Alice drinks black tea" });
    expect(edited.status).toBe(200);
    const tooLong = await alice.call("PUT", `/memory/${id}`, { text: "x".repeat(1_001) });
    expect(tooLong.status).toBe(400);
    expect(
      ((await tooLong.json()) as { error: { code: string; message: string } }).error,
    ).toMatchObject({
      code: "invalid_memory",
      message: expect.stringMatching(/at most 1000 characters/),
    });
    const deleted = await alice.call("DELETE", `/memory/${id}`);
    expect(((await deleted.json()) as { entries: unknown[] }).entries).toEqual([]);

    const [after] = await turn(
      () => slack.dm({ user: "UALICE", text: "remind me what I drink" }),
      aliceDm,
      "remind me what I drink",
      { name: "recall", input: { query: "tea" } },
    );
    expect(after?.content).toBe("Nothing remembered matches.");
  });

  it("keeps each person's schedules on their own settings page", async () => {
    const aliceDm = slack.imChannel("UALICE").id;
    const [set] = await turn(
      () => slack.dm({ user: "UALICE", text: "remind me tomorrow" }),
      aliceDm,
      "remind me tomorrow",
      { name: "schedule", input: { text: "Call the dentist", in: "1d" } },
    );
    const id = /Scheduled (sch_\w+)/.exec(set!.content)![1]!;
    const alice = await settingsOf("UALICE");
    const bob = await settingsOf("UBOB");
    const mine = (await (await alice.call("GET", "/schedules")).json()) as {
      schedules: { id: string; text: string; channelId: string }[];
    };
    expect(mine.schedules).toEqual([
      expect.objectContaining({ id, text: "Call the dentist", channelId: aliceDm }),
    ]);
    expect(
      ((await (await bob.call("GET", "/schedules")).json()) as { schedules: unknown[] }).schedules,
    ).toEqual([]);
    expect((await bob.call("DELETE", `/schedules/${id}`)).status).toBe(404);
    // Nor can bob's agent cancel it, even knowing its id: his turns act on his schedules only.
    const [refused] = await turn(
      () => slack.dm({ user: "UBOB", text: "cancel that reminder" }),
      slack.imChannel("UBOB").id,
      "cancel that reminder",
      { name: "cancel_schedule", input: { id } },
    );
    expect(refused).toMatchObject({
      isError: true,
      content: expect.stringMatching(new RegExp(`there is no schedule ${id}`)),
    });
    expect(
      (await alice.call("DELETE", `/schedules/${id}`, undefined, { csrf: false })).status,
    ).toBe(403);
    const cancelled = await alice.call("DELETE", `/schedules/${id}`);
    expect(((await cancelled.json()) as { schedules: unknown[] }).schedules).toEqual([]);
  });

  it("is bounded: a full memory and a huge entry are refused with what to do", async () => {
    const dm = slack.imChannel("UCAROL").id;
    for (const fact of ["likes cats", "lives in Lyon", "speaks French"]) {
      await turn(() => slack.dm({ user: "UCAROL", text: `keep ${fact}` }), dm, `keep ${fact}`, {
        name: "remember",
        input: { text: fact },
      });
    }
    const [full] = await turn(
      () => slack.dm({ user: "UCAROL", text: "keep one more" }),
      dm,
      "keep one more",
      {
        name: "remember",
        input: { text: "plays chess" },
      },
    );
    expect(full).toMatchObject({
      isError: true,
      content: expect.stringMatching(
        /holds 3 entries, its limit\. Forget entries that are no longer needed/,
      ),
    });
    const [huge] = await turn(
      () => slack.dm({ user: "UCAROL", text: "keep a novel" }),
      dm,
      "keep a novel",
      {
        name: "remember",
        input: { text: "y".repeat(5_000) },
      },
    );
    expect(huge).toMatchObject({
      isError: true,
      content: expect.stringMatching(/text: must not have more than 1000 characters/),
    });
  });

  it("follows an API person across their channels", async () => {
    llm.when((r) => r.lastUserText === "remember my editor", {
      toolCalls: [{ name: "remember", input: { text: "Uses vim" } }],
    });
    llm.when((r) => r.lastUserText === "remember my editor", { text: "ok" });
    llm.when((r) => r.lastUserText === "which editor", {
      toolCalls: [{ name: "recall", input: { query: "editor vim" } }],
    });
    llm.when((r) => r.lastUserText === "which editor", { text: "ok" });
    const send = async (channel: string, text: string) =>
      collectEvents(
        await gw.api("/api/v1/agents/default/messages", {
          method: "POST",
          headers: { accept: "text/event-stream" },
          body: JSON.stringify({ user: "dana", channel, text }),
        }),
      );
    await send("web", "remember my editor");
    await send("mobile", "which editor");
    expect(resultsFor("which editor")[0]?.content).toMatch(/: Uses vim$/);
  });
});
