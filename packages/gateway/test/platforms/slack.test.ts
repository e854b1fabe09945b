import {
  type GatewayProcess,
  type MockLlm,
  type SlackEmulator,
  type SlackMessage,
  startGatewayProcess,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ASK_BASH_TOML,
  conversationsOf,
  drainedQueue,
  historyOf,
  llmEnv,
  PROVIDER_KEY,
  queueDepth,
  slowText,
  WAIT,
  waitForHistory,
} from "./helpers.ts";

/**
 * The Slack adapter end to end: the Slack emulator (real wire protocol), a real
 * `lobu run` gateway, real sandboxed workers and the mock LLM.
 */

const SIGNING_SECRET = "slack-signing-secret-for-tests";
const BOT_TOKEN = "xoxb-1111-2222-testtoken";

let llm: MockLlm;
let slack: SlackEmulator;
let gw: GatewayProcess;

function sectionText(m: SlackMessage | undefined): string {
  return (m?.blocks ?? [])
    .filter((b) => (b as { type?: string }).type === "section")
    .map((b) => (b as { text: { text: string } }).text.text)
    .join("\n\n");
}

function actionIds(m: SlackMessage | undefined): string[] {
  return (m?.blocks ?? [])
    .filter((b) => (b as { type?: string }).type === "actions")
    .flatMap((b) => (b as { elements: { action_id: string }[] }).elements.map((e) => e.action_id));
}

function contextText(m: SlackMessage | undefined): string {
  return (m?.blocks ?? [])
    .filter((b) => (b as { type?: string }).type === "context")
    .flatMap((b) => (b as { elements: { text?: string }[] }).elements.map((e) => e.text ?? ""))
    .join("\n");
}

/** The bot message in `channel` (optionally a thread) whose sections read `text`. */
function waitForReply(channel: string, text: string, threadTs?: string): Promise<SlackMessage> {
  return slack.waitFor(
    () =>
      slack.messages(channel, threadTs ? { threadTs } : {}).find((m) => sectionText(m) === text),
    { ...WAIT, description: `the reply "${text}"` },
  );
}

function waitForCard(channel: string, threadTs?: string): Promise<SlackMessage> {
  return slack.waitFor(
    () =>
      slack
        .messages(channel, threadTs ? { threadTs } : {})
        .find((m) => actionIds(m).some((id) => id.startsWith("lobu:"))),
    { ...WAIT, description: "a card with buttons" },
  );
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    clientId: "1234.5678",
    clientSecret: "client-secret-for-tests",
    subscriptions: ["app_mention", "message.im", "message.channels"],
  });
  gw = await startGatewayProcess({
    toml: [
      ...ASK_BASH_TOML,
      "[platforms.slack]",
      'stream_interval = "200ms"',
      "max_inline_chars = 2000",
    ].join("\n"),
    env: {
      ...llmEnv(llm),
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_CLIENT_ID: "1234.5678",
      SLACK_CLIENT_SECRET: "client-secret-for-tests",
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

describe("Slack: conversations", () => {
  it("answers the URL verification challenge", async () => {
    expect((await slack.urlVerification()).verified).toBe(true);
  });

  it("streams a reply to a mention into the mention's thread", async () => {
    const channel = slack.addChannel({ name: "general" });
    const story = "Once upon a time, a gateway gave every person their own agent.";
    llm.when((r) => r.lastUserText === "tell me a story", slowText(story));
    const sent = await slack.mention({
      user: "UALICE",
      channel: channel.id,
      text: "tell me a story",
    });
    expect(sent.status).toBe(200);
    // app_mention and message.channels both arrive for the one message.
    expect(sent.events.map((e) => e.type).sort()).toEqual(["app_mention", "message"]);

    const reply = await waitForReply(channel.id, story, sent.ts);
    expect(reply.threadTs).toBe(sent.ts);
    const updates = slack.calls.filter((c) => c.method === "chat.update" && c.args.ts === reply.ts);
    expect(updates.length).toBeGreaterThanOrEqual(3);
    expect(reply.edits.length).toBeGreaterThanOrEqual(3);
    // It started as a placeholder while the agent worked.
    expect(reply.edits[0]?.text).toBe("Thinking…");
    // Exactly one reply for the two events.
    expect(slack.messages(channel.id, { threadTs: sent.ts })).toHaveLength(1);
    // The agent saw the text without the mention.
    expect(llm.requests.some((r) => r.lastUserText === "tell me a story")).toBe(true);
  });

  it("takes follow-ups in the thread without a new mention, from the person who started it only", async () => {
    const channel = slack.addChannel({ name: "followups" });
    const first = await slack.mention({
      user: "UFOLLOW",
      channel: channel.id,
      text: "start a thread",
    });
    await waitForReply(channel.id, "echo: start a thread", first.ts);

    // Someone else in the thread, without a mention: not for the agent.
    const other = await slack.userMessage({
      user: "UBYSTANDER",
      channel: channel.id,
      text: "just chatting",
      threadTs: first.ts,
    });
    expect(other.status).toBe(200);
    expect(await conversationsOf(gw, "UBYSTANDER")).toHaveLength(0);
    // A top-level channel message without a mention: not for the agent either.
    await slack.userMessage({ user: "UFOLLOW", channel: channel.id, text: "unrelated" });

    // A follow-up comes with the thread's earlier messages (docs/context.md), its own text last.
    llm.when((r) => r.lastUserText.endsWith("\nand a follow-up"), {
      text: "echo: and a follow-up",
    });
    const follow = await slack.userMessage({
      user: "UFOLLOW",
      channel: channel.id,
      text: "and a follow-up",
      threadTs: first.ts,
    });
    expect(follow.events.map((e) => e.type)).toEqual(["message"]);
    await waitForReply(channel.id, "echo: and a follow-up", first.ts);
    expect(llm.requests.some((r) => r.lastUserText.includes("just chatting"))).toBe(true);
    const [conv] = await conversationsOf(gw, "UFOLLOW");
    const users = (await historyOf(gw, conv!.id))
      .filter((h) => h.role === "user")
      .map((h) => h.text);
    expect(users).toEqual(["start a thread", "and a follow-up"]);
  });

  it("answers a DM at the top level, streaming, and survives a rate-limited update", async () => {
    const im = slack.imChannel("UDM");
    const answer = "Direct messages get direct answers, streamed as they are written.";
    llm.when((r) => r.lastUserText === "hello in private", slowText(answer));
    slack.forceRateLimit("chat.update", { retryAfter: 1 });
    const sent = await slack.dm({ user: "UDM", text: "hello in private" });
    expect(sent.status).toBe(200);
    const reply = await waitForReply(im.id, answer);
    expect(reply.threadTs).toBeUndefined();
    expect(
      slack.calls.filter((c) => c.method === "chat.update" && c.args.ts === reply.ts).length,
    ).toBeGreaterThanOrEqual(2);
    expect(slack.calls.some((c) => c.method === "chat.update" && c.httpStatus === 429)).toBe(true);
  });

  it("renders Markdown as mrkdwn and attaches a very long reply as a file", async () => {
    const im = slack.imChannel("ULONG");
    const long = `**Report**\n\n${Array.from({ length: 60 }, (_, i) => `Line ${i} of the report, with \`code\`.`).join("\n\n")}`;
    llm.when((r) => r.lastUserText === "write a long report", { text: long });
    await slack.dm({ user: "ULONG", text: "write a long report" });
    const file = await slack.waitFor(() => slack.uploads.find((f) => f.name === "reply.md"), {
      ...WAIT,
      description: "the uploaded reply",
    });
    expect(file.data.toString()).toBe(long);
    const reply = slack.messages(im.id).find((m) => sectionText(m).startsWith("*Report*"));
    expect(sectionText(reply)).toContain("Line 0 of the report, with `code`.");
    expect(contextText(reply)).toMatch(/attached as a file/);
  });

  it("gives exactly one reply to a webhook Slack retried", async () => {
    const im = slack.imChannel("URETRY");
    llm.when((r) => r.lastUserText === "only once please", slowText("Just once.", 4, 100));
    const sent = await slack.dm({ user: "URETRY", text: "only once please" });
    const retry = await slack.sendEvent(sent.events[0]!, {
      eventId: sent.deliveries[0]!.eventId,
      retryNum: 1,
      retryReason: "http_timeout",
    });
    expect(retry.status).toBe(200);
    await waitForReply(im.id, "Just once.");
    expect(slack.messages(im.id)).toHaveLength(1);
    const [conv] = await conversationsOf(gw, "URETRY");
    const history = await historyOf(gw, conv!.id);
    expect(history.filter((h) => h.role === "user")).toHaveLength(1);
  });

  it("saves an attachment in the sandbox and tells the agent where (docs/files.md)", async () => {
    const sent = await slack.dm({
      user: "UFILES",
      text: "",
      files: [{ name: "notes.txt", content: "the plans" }],
    });
    expect(sent.status).toBe(200);
    expect(sent.events[0]).toMatchObject({ subtype: "file_share" });
    await waitForHistory(gw, "UFILES", (h) => h.some((e) => e.role === "assistant"));
    const told = llm.requests.find((r) =>
      /\/workspace\/inbox\/[\d-]+\/notes\.txt \(name: notes\.txt, type: text\/plain, size: 9 bytes\)/.test(
        r.lastUserText,
      ),
    );
    expect(told).toBeDefined();
    // Named, not pasted: the agent reads the file in its sandbox.
    expect(told?.lastUserText).not.toContain("the plans");
  });

  it("ignores its own messages and edits (Slack echoes them as message events)", async () => {
    const im = slack.imChannel("UECHO");
    await slack.dm({ user: "UECHO", text: "echo test" });
    const reply = await waitForReply(im.id, "echo: echo test");
    // The echo of the final edit was delivered and acknowledged...
    await slack.waitFor(
      () =>
        slack.deliveries.find(
          (d) =>
            d.kind === "event" &&
            d.body.includes('"message_changed"') &&
            d.body.includes(reply.ts) &&
            d.body.includes("echo: echo test") &&
            d.response.status === 200,
        ),
      { ...WAIT, description: "the echoed edit" },
    );
    // ...and never became a message for the agent.
    expect(await conversationsOf(gw, slack.botUserId)).toHaveLength(0);
    const [conv] = await conversationsOf(gw, "UECHO");
    expect((await historyOf(gw, conv!.id)).filter((h) => h.role === "user")).toHaveLength(1);
  });
});

describe("Slack: settings", () => {
  it("sends the settings button in a DM, and only to the asker (ephemeral) in a channel", async () => {
    const im = slack.imChannel("USETTINGS");
    await slack.dm({ user: "USETTINGS", text: "settings" });
    const dm = await slack.waitFor(
      () => slack.messages(im.id).find((m) => actionIds(m).includes("lobu-settings")),
      WAIT,
    );
    const button = (dm.blocks ?? [])
      .flatMap((b) => (b as { elements?: { url?: string }[] }).elements ?? [])
      .find((e) => e.url);
    expect(button?.url).toMatch(/\/settings/);

    const channel = slack.addChannel({ name: "settings-channel" });
    await slack.mention({ user: "USETTINGS", channel: channel.id, text: "settings" });
    const ephemeral = await slack.waitFor(
      () => slack.ephemerals.find((e) => e.user === "USETTINGS" && e.channel === channel.id),
      WAIT,
    );
    expect(JSON.stringify(ephemeral.blocks)).toContain("lobu-settings");
    expect(slack.messages(channel.id)).toHaveLength(0);
    expect(await conversationsOf(gw, "USETTINGS")).toHaveLength(0);
  });
});

describe("Slack: buttons", () => {
  it("asks a question with buttons, takes the click and continues; the card shows the answer", async () => {
    const channel = slack.addChannel({ name: "questions" });
    llm.when(
      (r) => r.lastUserText === "pick a color for me",
      {
        toolCalls: [
          { name: "ask_user", input: { question: "Which color?", options: ["Red", "Blue"] } },
        ],
      },
      (r) => ({ text: `Going with it. ${r.toolResults[0]?.content ?? ""}` }),
    );
    const sent = await slack.mention({
      user: "UASK",
      channel: channel.id,
      text: "pick a color for me",
    });
    const card = await waitForCard(channel.id, sent.ts);
    expect(sectionText(card)).toContain("Which color?");
    const blue = actionIds(card).find((id) => id.endsWith(":o1"))!;

    // Only the person who asked may answer.
    const intruder = await slack.clickButton({
      user: "UINTRUDER",
      channel: channel.id,
      messageTs: card.ts,
      actionId: blue,
    });
    expect(intruder.status).toBe(200);
    const ephemeral = await slack.waitFor(
      () => slack.ephemerals.find((e) => e.user === "UINTRUDER"),
      WAIT,
    );
    expect(ephemeral.text).toMatch(/only the person who asked/);

    const click = await slack.clickButton({
      user: "UASK",
      channel: channel.id,
      messageTs: card.ts,
      actionId: blue,
    });
    expect(click.status).toBe(200);
    await waitForReply(channel.id, "Going with it. The user answered: Blue", sent.ts);
    const closed = slack.message(channel.id, card.ts)!;
    expect(actionIds(closed)).toEqual([]);
    expect(contextText(closed)).toMatch(/✅ \*Blue\* \(answered by /);
    // The reply continues below the card.
    const thread = slack.messages(channel.id, { threadTs: sent.ts });
    expect((thread.at(-1)?.ts ?? "") > card.ts).toBe(true);
  });

  it("asks before running bash (policy ask): Approve runs it", async () => {
    const channel = slack.addChannel({ name: "approvals" });
    llm.when(
      (r) => r.lastUserText === "run the approved thing",
      { toolCalls: [{ name: "bash", input: { command: "echo approved-run-output" } }] },
      (r) => ({ text: `Result: ${r.toolResults[0]?.content.trim()}` }),
    );
    const sent = await slack.mention({
      user: "UAPPROVE",
      channel: channel.id,
      text: "run the approved thing",
    });
    const card = await waitForCard(channel.id, sent.ts);
    // The input itself is in a preformatted block, exactly as it will run.
    expect(JSON.stringify(card.blocks)).toContain(
      '"type":"rich_text_preformatted","elements":[{"type":"text","text":"command: echo approved-run-output"}]',
    );
    expect(actionIds(card).map((id) => id.split(":").at(-1))).toEqual([
      "approve",
      "deny",
      "always",
    ]);
    await slack.clickButton({
      user: "UAPPROVE",
      channel: channel.id,
      messageTs: card.ts,
      actionId: actionIds(card)[0]!,
    });
    await waitForReply(channel.id, "Result: approved-run-output", sent.ts);
    expect(contextText(slack.message(channel.id, card.ts))).toMatch(/✅ \*Approve\*/);
  });

  it("asks before running bash: Deny stops it", async () => {
    const channel = slack.addChannel({ name: "denials" });
    llm.when(
      (r) => r.lastUserText === "run the denied thing",
      { toolCalls: [{ name: "bash", input: { command: "echo denied-run-output > /tmp/never" } }] },
      (r) => ({
        text: r.toolResults[0]?.isError ? "Understood, I did not run it." : "It ran anyway!",
      }),
    );
    const sent = await slack.mention({
      user: "UDENY",
      channel: channel.id,
      text: "run the denied thing",
    });
    const card = await waitForCard(channel.id, sent.ts);
    await slack.clickButton({
      user: "UDENY",
      channel: channel.id,
      messageTs: card.ts,
      actionId: actionIds(card)[1]!,
    });
    await waitForReply(channel.id, "Understood, I did not run it.", sent.ts);
    const toolRound = llm.requests.filter((r) => r.lastUserText === "run the denied thing").at(-1)!;
    expect(toolRound.toolResults[0]?.content).toMatch(/denied/);
    expect(contextText(slack.message(channel.id, card.ts))).toMatch(/⛔ \*Deny\*/);
  });
});

// Before "refused requests": its forged-click turn waits for an answer, so the queue does not drain.
describe("Slack: uninstall", () => {
  it("forgets a workspace that uninstalled the app: its messages are not taken", async () => {
    slack.setAuthorizeIdentity({ teamId: "T3GONE", teamName: "Gone Co", userId: "U3ADMIN" });
    const install = await fetch(`${gw.url}/slack/install`, { redirect: "manual" });
    const cookie = install.headers.get("set-cookie")!.split(";")[0]!;
    const approved = await fetch(install.headers.get("location")!, { redirect: "manual" });
    const done = await fetch(approved.headers.get("location")!, { headers: { cookie } });
    expect(done.status).toBe(200);
    slack.addUser({ id: "U3BOB", teamId: "T3GONE" });
    const channel = slack.addChannel({ name: "gone-general", teamId: "T3GONE" });
    const first = await slack.mention({ user: "U3BOB", channel: channel.id, text: "before" });
    await waitForReply(channel.id, "echo: before", first.ts);

    const uninstalled = await slack.sendEvent({ type: "app_uninstalled" }, { teamId: "T3GONE" });
    expect(uninstalled.status).toBe(200);
    const before = await drainedQueue(gw);
    const after = await slack.mention({ user: "U3BOB", channel: channel.id, text: "after" });
    expect(after.status).toBe(200);
    expect(await queueDepth(gw)).toBe(before);
    const history = await waitForHistory(gw, "U3BOB", (h) => h.some((e) => e.role === "assistant"));
    expect(history.filter((h) => h.role === "user").map((h) => h.text)).toEqual(["before"]);
  });
});

describe("Slack: refused requests", () => {
  it.each([
    ["a wrong signing secret", { secret: "not-the-secret" }],
    ["a stale timestamp", { staleBySec: 600 }],
    ["no signature", { omitSignature: true }],
  ])("refuses an event with %s (401, nothing queued)", async (_name, forge) => {
    const before = await drainedQueue(gw);
    const sent = await slack.dm({ user: "UMALLORY", text: "let me in" }, { forge });
    expect(sent.status).toBe(401);
    expect(await conversationsOf(gw, "UMALLORY")).toHaveLength(0);
    expect(await queueDepth(gw)).toBe(before);
  });

  it("refuses a forged button click", async () => {
    const channel = slack.addChannel({ name: "forged-clicks" });
    llm.when((r) => r.lastUserText === "forged click test", {
      toolCalls: [{ name: "ask_user", input: { question: "Sure?", options: ["Yes"] } }],
    });
    const sent = await slack.mention({
      user: "UFORGE",
      channel: channel.id,
      text: "forged click test",
    });
    const card = await waitForCard(channel.id, sent.ts);
    const click = await slack.clickButton(
      { user: "UFORGE", channel: channel.id, messageTs: card.ts, actionId: actionIds(card)[0]! },
      { forge: { secret: "wrong" } },
    );
    expect(click.status).toBe(401);
    expect(actionIds(slack.message(channel.id, card.ts))).not.toEqual([]);
  });
});

describe("Slack: OAuth install into another workspace", () => {
  it("installs via /slack/install and answers in the new workspace with its own token", async () => {
    slack.setAuthorizeIdentity({ teamId: "T2OTHER", teamName: "Other Co", userId: "U2ADMIN" });
    const install = await fetch(`${gw.url}/slack/install`, { redirect: "manual" });
    expect(install.status).toBe(302);
    const authorize = new URL(install.headers.get("location")!);
    expect(`${authorize.origin}${authorize.pathname}`).toBe(`${slack.url}/oauth/v2/authorize`);
    expect(authorize.searchParams.get("scope")).toContain("app_mentions:read");
    const cookie = install.headers.get("set-cookie")!.split(";")[0]!;

    const approved = await fetch(authorize, { redirect: "manual" });
    const callback = approved.headers.get("location")!;
    expect(callback.startsWith(`${gw.url}/slack/oauth/callback?`)).toBe(true);

    // Without the browser's cookie the callback is refused (and the state stays usable).
    expect((await fetch(callback, { redirect: "manual" })).status).toBe(400);
    const done = await fetch(callback, { headers: { cookie } });
    expect(done.status).toBe(200);
    expect(await done.text()).toContain("Other Co");
    // The state is single-use.
    expect((await fetch(callback, { headers: { cookie } })).status).toBe(400);

    const installation = slack.installations.find((i) => i.teamId === "T2OTHER")!;
    expect(installation).toBeDefined();
    slack.addUser({ id: "U2ALICE", teamId: "T2OTHER" });
    const channel = slack.addChannel({ name: "other-general", teamId: "T2OTHER" });
    const sent = await slack.mention({
      user: "U2ALICE",
      channel: channel.id,
      text: "hello other workspace",
    });
    expect(sent.status).toBe(200);
    const reply = await waitForReply(channel.id, "echo: hello other workspace", sent.ts);
    const post = slack.calls.find(
      (c) => c.method === "chat.postMessage" && c.response.ts === reply.ts,
    )!;
    expect(post.token).toBe(installation.token);
    const [conv] = await conversationsOf(gw, "U2ALICE");
    expect(conv?.key).toMatchObject({
      platform: "slack",
      userId: "U2ALICE",
      channelId: channel.id,
    });
  });
});

describe("Slack: Socket Mode", () => {
  let socketSlack: SlackEmulator;
  let socketGw: GatewayProcess;

  beforeAll(async () => {
    socketSlack = await startSlackEmulator({
      signingSecret: "unused-in-socket-mode",
      botToken: "xoxb-socket-bot",
      appToken: "xapp-1-socket-app-token",
      subscriptions: ["app_mention", "message.im"],
    });
    socketGw = await startGatewayProcess({
      toml: [
        "[agents.default]",
        "[agents.helper]",
        'name = "Helper"',
        "",
        "[platforms.slack]",
        'mode = "socket"',
        'agent = "helper"',
        'stream_interval = "200ms"',
      ].join("\n"),
      env: {
        ...llmEnv(llm),
        SLACK_BOT_TOKEN: "xoxb-socket-bot",
        SLACK_APP_TOKEN: "xapp-1-socket-app-token",
        SLACK_SIGNING_SECRET: undefined,
        SLACK_API_URL: socketSlack.apiUrl,
      },
    });
  });

  afterAll(async () => {
    await socketGw?.stop();
    await socketSlack?.close();
  });

  it("receives events over the socket, acknowledges them and replies (as the configured agent)", async () => {
    await socketSlack.waitFor(() => socketSlack.socketConnections > 0, {
      ...WAIT,
      description: "a Socket Mode connection",
    });
    const im = socketSlack.imChannel("USOCKET");
    const sent = await socketSlack.dm(
      { user: "USOCKET", text: "over the socket" },
      { via: "socket" },
    );
    expect(sent.deliveries[0]?.envelopeId).toBeDefined();
    expect(sent.status).toBe(200);
    await socketSlack.waitFor(
      () => socketSlack.messages(im.id).find((m) => sectionText(m) === "echo: over the socket"),
      WAIT,
    );
    // `agent = "helper"` routes this app's messages to that agent.
    const res = await socketGw.api("/api/v1/agents/helper/conversations?user=USOCKET");
    expect(((await res.json()) as { conversations: unknown[] }).conversations).toHaveLength(1);
    // No HTTP endpoint in Socket Mode.
    expect(
      (await fetch(`${socketGw.url}/slack/events`, { method: "POST", body: "{}" })).status,
    ).toBe(404);
    await socketGw.stop();
    expect(socketGw.child.exitCode).toBe(0);
    await socketSlack.waitFor(() => socketSlack.socketConnections === 0, WAIT);
  });
});

describe("Slack: configuration", () => {
  it("refuses to start on a bad [platforms.slack], naming the key", async () => {
    await expect(
      startGatewayProcess({
        toml: '[platforms.slack]\nmode = "carrier-pigeon"\n',
        env: { SLACK_BOT_TOKEN: BOT_TOKEN, SLACK_SIGNING_SECRET: "x", SLACK_API_URL: slack.apiUrl },
      }),
    ).rejects.toThrow(/platforms\.slack\.mode/);
  });

  it("refuses to start in HTTP mode without a signing secret, saying what to set", async () => {
    await expect(
      startGatewayProcess({
        toml: "[platforms.slack]\n",
        env: {
          SLACK_BOT_TOKEN: BOT_TOKEN,
          SLACK_SIGNING_SECRET: undefined,
          SLACK_API_URL: slack.apiUrl,
        },
      }),
    ).rejects.toThrow(/SLACK_SIGNING_SECRET/);
  });
});
