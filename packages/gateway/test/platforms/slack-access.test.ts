import { sandboxIdOf } from "@lobu/core";
import {
  type GatewayProcess,
  type MockLlm,
  type SlackEmulator,
  type SlackMessage,
  startMockLlm,
  startSlackEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drainedQueue, PROVIDER_KEY, queueDepth, startSlackGateway, WAIT } from "./helpers.ts";

/**
 * Who may use an agent, per-channel agents and ambient mode, end to end: the
 * Slack emulator (users.info profiles, Slack Connect channels, user groups),
 * a real gateway, real sandboxes and the mock LLM. A refused message must
 * cost nothing: no queue entry, no sandbox, no model call.
 */

const SIGNING_SECRET = "slack-signing-secret-access";
const BOT_TOKEN = "xoxb-7777-8888-access";
const TEAM = "T0TEAM0001";
const OTHER_ORG = "T0EXTERNAL";

const CH = {
  general: "C0GENERAL01",
  shared: "C0SHARED001",
  sharedOk: "C0SHAREDOK1",
  help: "C0HELP00001",
  ambient: "C0AMBIENT01",
  bindme: "C0BINDME001",
} as const;

let llm: MockLlm;
let slack: SlackEmulator;
let gw: GatewayProcess;

const TOML = [
  "[sandbox]",
  'idle_timeout = "10m"',
  "",
  "[agents.default.access]",
  'allow.email_domains = ["example.com"]',
  `allow.users = ["slack:${TEAM}:UALLOWED01"]`,
  `deny.users = ["slack:${TEAM}:UDENIED001"]`,
  `deny.groups = ["slack:${TEAM}:S0BLOCKED1"]`,
  `external_channels = ["slack:${TEAM}:${CH.sharedOk}"]`,
  "",
  "[agents.helper]",
  'name = "Helper"',
  'persona = { name = "Helper Bot", icon_url = "https://example.com/helper.png" }',
  "bindable = true",
  "",
  "[agents.vault]",
  'name = "Vault"',
  "",
  `[channels."slack:${TEAM}:${CH.help}"]`,
  'agent = "helper"',
  'model = "helper-model-1"',
  'system_prompt = "You are the helper of the help channel."',
  'tools = ["read"]',
  "",
  `[channels."slack:${TEAM}:${CH.ambient}"]`,
  'ambient = { mode = "questions", per_minute = 2 }',
].join("\n");

function texts(m: SlackMessage): string {
  return [m.text, ...(m.blocks ?? []).map((b) => JSON.stringify(b))].join("\n");
}

/** The bot's message in a thread that contains `needle`. */
function waitForBot(channel: string, threadTs: string, needle: string): Promise<SlackMessage> {
  return slack.waitFor(
    () =>
      slack
        .messages(channel, { threadTs })
        .find((m) => texts(m).includes(needle) && m.edits.length >= 0),
    { ...WAIT, description: `a bot message containing "${needle}"` },
  );
}

/** The agent's final reply (the echo of the mock LLM) in a thread. */
function waitForEcho(channel: string, threadTs: string, text: string): Promise<SlackMessage> {
  return waitForBot(channel, threadTs, `echo: ${text}`);
}

async function sandboxIds(): Promise<string[]> {
  const res = await gw.api("/api/v1/sandboxes");
  return ((await res.json()) as { sandboxes: { id: string }[] }).sandboxes.map((s) => s.id);
}

const sandboxOf = (agentId: string, user: string, channel: string) =>
  sandboxIdOf({ agentId, platform: "slack", workspace: TEAM, userId: user, channelId: channel });

/**
 * Send a message that must be refused, and check it cost nothing: the notice
 * came, and no model call, queue entry or sandbox followed.
 */
async function expectRefused(
  send: () => Promise<{ ts: string; status: number }>,
  channel: string,
  notice: string,
  user: string,
) {
  await drainedQueue(gw);
  const calls = llm.requests.length;
  const sent = await send();
  expect(sent.status).toBe(200);
  const reply = await waitForBot(channel, sent.ts, notice);
  expect(texts(reply)).toContain(notice);
  expect(await queueDepth(gw)).toBe(0);
  expect(llm.requests.length).toBe(calls);
  expect(await sandboxIds()).not.toContain(sandboxOf("default", user, channel));
  return reply;
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  slack = await startSlackEmulator({
    signingSecret: SIGNING_SECRET,
    botToken: BOT_TOKEN,
    botName: "lobu",
    teamId: TEAM,
    subscriptions: ["app_mention", "message.im", "message.channels"],
  });
  for (const id of [CH.general, CH.help, CH.ambient, CH.bindme])
    slack.addChannel({ id, name: id.toLowerCase() });
  slack.addChannel({ id: CH.shared, name: "connect", sharedWith: [OTHER_ORG] });
  slack.addChannel({ id: CH.sharedOk, name: "connect-ok", sharedWith: [OTHER_ORG] });
  slack.addUser({ id: "UMEMBER001", email: "bob@example.com" });
  slack.addUser({ id: "UADMIN0001", email: "ada@example.com", admin: true });
  slack.addUser({ id: "UALLOWED01", email: "carol@elsewhere.org" });
  slack.addUser({ id: "UOTHERDOM1", email: "eve@other.org" });
  slack.addUser({ id: "UDENIED001", email: "dan@example.com" });
  slack.addUser({ id: "UBLOCKED01", email: "frank@example.com" });
  slack.addUser({ id: "UGUEST0001", email: "gina@example.com", guest: "single" });
  slack.addUser({ id: "UGONE00001", email: "hal@example.com", deleted: true });
  slack.addUser({ id: "UOUTSIDE01", email: "ida@example.com", teamId: OTHER_ORG });
  slack.addUserGroup({ id: "S0BLOCKED1", handle: "blocked", users: ["UBLOCKED01"] });
  gw = await startSlackGateway({
    slack,
    llm,
    toml: TOML,
  });
});

afterAll(async () => {
  await gw?.stop();
  await slack?.close();
  await llm?.close();
});

describe("Slack: who may use the agent", () => {
  it("refuses an outsider in a Slack Connect channel, with a message and at no cost", async () => {
    const notice = "shared with another organization";
    await expectRefused(
      () => slack.mention({ user: "UOUTSIDE01", channel: CH.shared, text: "hello from outside" }),
      CH.shared,
      notice,
      "UOUTSIDE01",
    );
    // A member of the workspace is refused there too: the channel itself is external.
    await expectRefused(
      () => slack.mention({ user: "UMEMBER001", channel: CH.shared, text: "hello in connect" }),
      CH.shared,
      notice,
      "UMEMBER001",
    );
    // The shared channel was looked up with conversations.info.
    expect(
      slack.calls.some((c) => c.method === "conversations.info" && c.args.channel === CH.shared),
    ).toBe(true);
  });

  it("tells whoever adds it to a Slack Connect channel at once that it will not answer there", async () => {
    const connect = slack.addChannel({ name: "partner-room", sharedWith: [OTHER_ORG] });
    const allowed = slack.installations[0]!;
    const joined = (channel: string) =>
      slack.sendEvent({
        type: "member_joined_channel",
        user: allowed.botUserId,
        channel,
        channel_type: "C",
        team: TEAM,
        inviter: "UMEMBER001",
      });
    expect((await joined(connect.id)).status).toBe(200);
    const notice = await slack.waitFor(
      () =>
        slack
          .messages(connect.id)
          .find((m) => texts(m).includes("shared with another organization")),
      { ...WAIT, description: "the notice to the inviter" },
    );
    expect(notice.text).toContain("<@UMEMBER001>");
    // Added to an ordinary channel, or an allowed shared one, it says nothing.
    await joined(CH.general);
    await joined(CH.sharedOk);
    const marker = await slack.mention({
      user: "UMEMBER001",
      channel: CH.general,
      text: "joined ok",
    });
    await waitForEcho(CH.general, marker.ts, "joined ok");
    for (const ch of [CH.general, CH.sharedOk])
      expect(slack.messages(ch).some((m) => texts(m).includes("shared with another"))).toBe(false);
  });

  it("answers in an external channel the operator allowed explicitly", async () => {
    const sent = await slack.mention({
      user: "UMEMBER001",
      channel: CH.sharedOk,
      text: "allowed connect",
    });
    await waitForEcho(CH.sharedOk, sent.ts, "allowed connect");
  });

  it("answers a person whose email domain is allowed, and one on the users list", async () => {
    const a = await slack.mention({ user: "UMEMBER001", channel: CH.general, text: "domain ok" });
    await waitForEcho(CH.general, a.ts, "domain ok");
    const b = await slack.mention({ user: "UALLOWED01", channel: CH.general, text: "listed ok" });
    await waitForEcho(CH.general, b.ts, "listed ok");
  });

  it("refuses a person on none of the allow lists", async () => {
    await expectRefused(
      () => slack.mention({ user: "UOTHERDOM1", channel: CH.general, text: "let me in" }),
      CH.general,
      "not on this agent's list",
      "UOTHERDOM1",
    );
  });

  it("tells a refused person once, not at every message they send", async () => {
    const first = await slack.mention({ user: "UOTHERDOM1", channel: CH.sharedOk, text: "knock" });
    await waitForBot(CH.sharedOk, first.ts, "not on this agent's list");
    const again = await slack.mention({
      user: "UOTHERDOM1",
      channel: CH.sharedOk,
      text: "knock knock",
    });
    expect(again.status).toBe(200);
    // Handled in order: once a later message is answered, the repeat was dropped silently.
    const marker = await slack.mention({
      user: "UMEMBER001",
      channel: CH.sharedOk,
      text: "after knock",
    });
    await waitForEcho(CH.sharedOk, marker.ts, "after knock");
    expect(slack.messages(CH.sharedOk, { threadTs: again.ts })).toHaveLength(0);
  });

  it("deny beats allow: a denied user and a member of a denied group are refused despite their allowed domain", async () => {
    await expectRefused(
      () => slack.mention({ user: "UDENIED001", channel: CH.general, text: "denied?" }),
      CH.general,
      "not allowed to use this agent",
      "UDENIED001",
    );
    await expectRefused(
      () => slack.mention({ user: "UBLOCKED01", channel: CH.general, text: "blocked?" }),
      CH.general,
      "not allowed to use this agent",
      "UBLOCKED01",
    );
    expect(slack.calls.some((c) => c.method === "usergroups.users.list")).toBe(true);
  });

  it("refuses a guest account", async () => {
    await expectRefused(
      () => slack.mention({ user: "UGUEST0001", channel: CH.general, text: "guest here" }),
      CH.general,
      "Guest accounts may not use this agent",
      "UGUEST0001",
    );
  });

  it("ignores a deactivated account without answering it", async () => {
    await drainedQueue(gw);
    const calls = llm.requests.length;
    const sent = await slack.mention({ user: "UGONE00001", channel: CH.general, text: "ghost" });
    expect(sent.status).toBe(200);
    // A later message is answered, so the earlier one was handled (and dropped) before it.
    const later = await slack.mention({
      user: "UMEMBER001",
      channel: CH.general,
      text: "after ghost",
    });
    await waitForEcho(CH.general, later.ts, "after ghost");
    expect(slack.messages(CH.general, { threadTs: sent.ts })).toHaveLength(0);
    expect(llm.requests.slice(calls).some((r) => r.lastUserText === "ghost")).toBe(false);
  });
});

describe("REST API: the same lists (platform api)", () => {
  it("refuses an API user the lists leave out with 403 access_denied, storing nothing", async () => {
    await drainedQueue(gw);
    const calls = llm.requests.length;
    const res = await gw.api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user: "mallory", channel: "chat", text: "let me in" }),
    });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { error: { code: string; details: { reason: string } } };
    expect(body.error).toMatchObject({ code: "access_denied", details: { reason: "not_allowed" } });
    expect(await queueDepth(gw)).toBe(0);
    expect(llm.requests.length).toBe(calls);
    const convs = await gw.api("/api/v1/agents/default/conversations?user=mallory");
    expect(((await convs.json()) as { conversations: unknown[] }).conversations).toEqual([]);
  });
});

describe("Slack: per-channel agents", () => {
  it("answers in a bound channel as its own agent: its name, picture, model and prompt", async () => {
    const sent = await slack.mention({ user: "UOTHERDOM1", channel: CH.help, text: "help me" });
    const reply = await waitForEcho(CH.help, sent.ts, "help me");
    expect(reply.username).toBe("Helper Bot");
    expect(reply.iconUrl).toBe("https://example.com/helper.png");
    const req = llm.requests.find((r) => r.lastUserText === "help me");
    expect(req?.model).toBe("helper-model-1");
    expect(JSON.stringify(req?.body.system)).toContain("You are the helper of the help channel.");
    // The bound agent's own sandbox, not the default agent's.
    expect(await sandboxIds()).toContain(sandboxOf("helper", "UOTHERDOM1", CH.help));
  });

  it("does not offer a tool the channel hides, and a call to it does not run", async () => {
    llm.when(
      (r) => r.lastUserText === "run the hidden tool",
      { toolCalls: [{ name: "bash", input: { command: "echo ran > /workspace/hidden-ran" } }] },
      (r) => ({ text: `tool said: ${r.toolResults[0]?.isError ? "error" : "ok"}` }),
    );
    const sent = await slack.mention({
      user: "UMEMBER001",
      channel: CH.help,
      text: "run the hidden tool",
    });
    await waitForBot(CH.help, sent.ts, "tool said: error");
    const [first, second] = llm.requests.filter((r) => r.lastUserText === "run the hidden tool");
    const offered = ((first?.body.tools ?? []) as { name: string }[]).map((t) => t.name);
    expect(offered).toContain("read");
    expect(offered).not.toContain("bash");
    expect(second?.toolResults[0]?.isError).toBe(true);
    // Nothing ran: the file the command would have written is not there.
    const sandbox = sandboxOf("helper", "UMEMBER001", CH.help);
    const exec = await gw.api(`/api/v1/sandboxes/${sandbox}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ command: "test -e /workspace/hidden-ran && echo yes || echo no" }),
    });
    // (The sandbox may have stopped already: then there is nothing to look into.)
    if (exec.ok) expect(((await exec.json()) as { output: string }).output.trim()).toBe("no");
  });
});

describe("Slack: ambient mode", () => {
  it("answers a question without a mention under the channel's rule, and no more than its rate", async () => {
    // One fixed minute window for the whole check (the rate is per minute).
    const second = new Date().getSeconds();
    if (second > 40) await new Promise((r) => setTimeout(r, (61 - second) * 1000));
    const q1 = await slack.userMessage({
      user: "UMEMBER001",
      channel: CH.ambient,
      text: "what is the plan for today?",
    });
    await waitForEcho(CH.ambient, q1.ts, "what is the plan for today?");

    const calls = llm.requests.length;
    const chatter = await slack.userMessage({
      user: "UMEMBER001",
      channel: CH.ambient,
      text: "nice weather",
    });
    const q2 = await slack.userMessage({
      user: "UMEMBER001",
      channel: CH.ambient,
      text: "how do I deploy",
    });
    await waitForEcho(CH.ambient, q2.ts, "how do I deploy");
    const q3 = await slack.userMessage({
      user: "UMEMBER001",
      channel: CH.ambient,
      text: "where are the docs?",
    });
    const marker = await slack.mention({
      user: "UMEMBER001",
      channel: CH.ambient,
      text: "mentions still work",
    });
    await waitForEcho(CH.ambient, marker.ts, "mentions still work");
    await drainedQueue(gw);
    const asked = llm.requests.slice(calls).map((r) => r.lastUserText);
    expect(asked).not.toContain("nice weather");
    expect(asked).not.toContain("where are the docs?");
    expect(slack.messages(CH.ambient, { threadTs: chatter.ts })).toHaveLength(0);
    expect(slack.messages(CH.ambient, { threadTs: q3.ts })).toHaveLength(0);
  });

  it("stays silent in a channel without ambient mode, and towards people its access rules refuse", async () => {
    const calls = llm.requests.length;
    const plain = await slack.userMessage({
      user: "UMEMBER001",
      channel: CH.general,
      text: "anyone there?",
    });
    const refused = await slack.userMessage({
      user: "UOTHERDOM1",
      channel: CH.ambient,
      text: "can I ask?",
    });
    const marker = await slack.mention({ user: "UMEMBER001", channel: CH.general, text: "marker" });
    await waitForEcho(CH.general, marker.ts, "marker");
    expect(llm.requests.slice(calls).map((r) => r.lastUserText)).toEqual(["marker"]);
    expect(slack.messages(CH.general, { threadTs: plain.ts })).toHaveLength(0);
    expect(slack.messages(CH.ambient, { threadTs: refused.ts })).toHaveLength(0);
  });
});

describe("Admin UI: access and channels", () => {
  async function admin() {
    const res = await fetch(`${gw.url}/admin/api/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: gw.token }),
    });
    const { csrf } = (await res.json()) as { csrf: string };
    const jar = res.headers
      .getSetCookie()
      .find((c) => c.startsWith("lobu_admin="))!
      .split(";")[0]!;
    return (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
      fetch(`${gw.url}/admin/api${path}`, {
        method,
        headers: {
          cookie: jar,
          "x-csrf-token": csrf,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
  }

  it("shows each agent's rules and every bound channel", async () => {
    const call = await admin();
    const { agents } = (await (await call("GET", "/agents")).json()) as {
      agents: {
        id: string;
        access: { allow: { emailDomains: string[] }; externalChannels: string[] };
        persona: unknown;
      }[];
    };
    const byId = Object.fromEntries(agents.map((a) => [a.id, a]));
    expect(byId.default?.access.allow.emailDomains).toEqual(["example.com"]);
    expect(byId.default?.access.externalChannels).toEqual([`slack:${TEAM}:${CH.sharedOk}`]);
    expect(byId.helper?.persona).toEqual({
      name: "Helper Bot",
      iconUrl: "https://example.com/helper.png",
    });
    const { channels } = (await (await call("GET", "/channels")).json()) as {
      channels: {
        channel: string;
        agent: string | null;
        tools: string[] | null;
        ambient: { mode: string };
      }[];
    };
    expect(channels).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          channel: `slack:${TEAM}:${CH.help}`,
          agent: "helper",
          tools: ["read"],
        }),
        expect.objectContaining({
          channel: `slack:${TEAM}:${CH.ambient}`,
          ambient: expect.objectContaining({ mode: "questions" }),
        }),
      ]),
    );
  });

  it("edits the rules of an API agent at run time (CSRF, schema, audit); lobu.toml agents stay read-only", async () => {
    const call = await admin();
    const rules = {
      allow: { users: ["api::alice"] },
      deny: {},
      directMessages: true,
      guests: false,
      externalChannels: [],
    };
    expect((await call("PUT", "/agents/default/access", rules)).status).toBe(409);
    const created = await gw.api("/api/v1/agents", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: "desk" }),
    });
    expect(created.status).toBe(201);
    const send = (user: string) =>
      gw.api("/api/v1/agents/desk/messages", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user, channel: "chat", text: "hi desk" }),
      });
    expect((await call("PUT", "/agents/desk/access", rules, { "x-csrf-token": "" })).status).toBe(
      403,
    );
    const bad = await call("PUT", "/agents/desk/access", { ...rules, allow: { users: ["alice"] } });
    expect(bad.status).toBe(400);
    expect((await call("PUT", "/agents/desk/access", rules)).status).toBe(200);
    expect((await send("mallory")).status).toBe(403);
    expect((await send("alice")).status).toBeLessThan(300);
    const audit = await gw.api("/api/v1/audit?action=agent.access_changed");
    const { records } = (await audit.json()) as {
      records: { agentId: string; details: unknown }[];
    };
    expect(records[0]).toMatchObject({
      agentId: "desk",
      details: expect.objectContaining({ guests: false }),
    });
    expect(JSON.stringify(records[0])).not.toContain("alice");
  });
});

describe("Slack: a workspace admin binds a channel", () => {
  const say = (user: string, text: string, channel: string = CH.bindme) =>
    slack.mention({ user, channel, text });

  it("binds only as an admin, only a bindable agent, never over lobu.toml; the binding routes messages", async () => {
    const refused = await say("UMEMBER001", "bind helper");
    await waitForBot(CH.bindme, refused.ts, "Only the channel's admins");
    const vault = await say("UADMIN0001", "bind vault");
    await waitForBot(CH.bindme, vault.ts, "bindable = true");
    const configured = await say("UADMIN0001", "bind helper", CH.help);
    await waitForBot(CH.help, configured.ts, "bound to an agent in lobu.toml");

    const bound = await say("UADMIN0001", "bind helper");
    await waitForBot(CH.bindme, bound.ts, 'now talks to the agent "helper"');
    // Slack delivered the mention twice (app_mention and message): one binding, one reply.
    expect(slack.messages(CH.bindme, { threadTs: bound.ts })).toHaveLength(1);
    const asked = await say("UOTHERDOM1", "who are you");
    const reply = await waitForEcho(CH.bindme, asked.ts, "who are you");
    expect(reply.username).toBe("Helper Bot");
    expect(await sandboxIds()).toContain(sandboxOf("helper", "UOTHERDOM1", CH.bindme));

    const unbound = await say("UADMIN0001", "unbind");
    await waitForBot(CH.bindme, unbound.ts, "unbound");
    // The default agent again, with its access rules: this person is not on its lists.
    const after = await say("UOTHERDOM1", "still there");
    await waitForBot(CH.bindme, after.ts, "not on this agent's list");

    const audit = await gw.api("/api/v1/audit?action=channel.");
    const { records } = (await audit.json()) as {
      records: { action: string; actor: string; agentId?: string; details: { channel: string } }[];
    };
    expect(records.map((r) => r.action)).toEqual(["channel.unbound", "channel.bound"]);
    expect(records[1]).toMatchObject({
      actor: `slack:${TEAM}:UADMIN0001`,
      agentId: "helper",
      details: { channel: `slack:${TEAM}:${CH.bindme}` },
    });
  });
});
