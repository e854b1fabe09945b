import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type SlackEmulator,
  startGatewayProcess,
  startMockLlm,
  startSlackEmulator,
  startTelegramEmulator,
  type TelegramEmulator,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WAIT } from "../platforms/helpers.ts";
import { apiSettingsLink, openSettings, type SettingsSession } from "../settings/helpers.ts";

/**
 * One person across platforms, end to end: a real `lobu run` with the Slack
 * and Telegram emulators (driven by @slack/web-api and grammY), the REST API
 * and the mock LLM. Slack alice shows a link code, Telegram alice enters it
 * and is shown a finishing code, which Slack alice enters back (proof on both
 * sides); the key and the model alice sets on her Slack settings page are
 * used by her Telegram turns, and what the agent remembers on Slack it
 * recalls on Telegram. Mallory, with a forwarded, reused or guessed code, or
 * a finishing code that is not hers to enter, gets nowhere. Alice unlinks
 * from the settings page and Telegram is on its own again.
 */

const GATEWAY_KEY = "sk-ant-gateway-key-0123456789abcdef";
const ALICE_KEY = "sk-ant-alice-personal-0123456789abcd";
const SLACK_SECRET = "slack-signing-secret-linking";
const SLACK_TOKEN = "xoxb-7777-8888-linking";
const TG_TOKEN = "7000000022:AAlinking-token";
const TG_ALICE = { id: 4242, first_name: "Alice", username: "alice" };
const TG_MALLORY = { id: 6666, first_name: "Mallory", username: "mallory" };
const TG_EVE = { id: 7777, first_name: "Eve", username: "eve" };

let llm: MockLlm;
let slack: SlackEmulator;
let tg: TelegramEmulator;
let gw: GatewayProcess;

/** Send a Slack DM as alice; the bot's first new reply containing `expect`. */
async function slackDm(text: string, expect: string | RegExp): Promise<string> {
  const im = slack.imChannel("UALICE").id;
  const before = slack.messages(im).length;
  await slack.dm({ user: "UALICE", text });
  const m = await slack.waitFor(
    () =>
      slack
        .messages(im)
        .slice(before)
        .find((m) => m.fromBot && !m.deleted && textOf(m).match(expect)),
    { ...WAIT, description: `the Slack reply to "${text}"` },
  );
  return textOf(m);
}

function textOf(m: { text: string; blocks?: unknown[] }): string {
  return `${m.text}\n${JSON.stringify(m.blocks ?? [])}`;
}

/** Send a Telegram private message; the bot's first new reply containing `expect`. */
async function tgSend(from: typeof TG_ALICE, text: string, expect: string | RegExp) {
  const before = tg.messages(from.id).length;
  tg.userSends({ chat: { id: from.id, type: "private" }, from, text });
  const m = await tg.waitFor(
    () =>
      tg
        .messages(from.id)
        .slice(before)
        .find((m) => (m.text ?? "").match(expect)),
    { ...WAIT, description: `the Telegram reply to "${text}"` },
  );
  return m.text ?? "";
}

/** A REST message as api user `user` (admin namespace); its events until the end. */
async function rest(user: string, text: string) {
  const res = await gw.api("/api/v1/agents/default/messages", {
    method: "POST",
    headers: { accept: "text/event-stream" },
    body: JSON.stringify({ user, channel: "linking", text }),
  });
  return collectEvents(res);
}

/** Every code shown, to check that none ever reaches the model. */
const shown: string[] = [];
const codeIn = (text: string) => {
  const code = /code is ([0-9A-Z]{5}-[0-9A-Z]{5})/.exec(text)?.[1];
  if (code) shown.push(code);
  return code;
};

async function slackSettings(): Promise<SettingsSession> {
  const reply = await slackDm("settings", "/settings/claim/");
  const url = /"url":"([^"]+\/settings\/claim\/[^"]+)"/.exec(reply)![1]!;
  return openSettings(gw, url);
}

beforeAll(async () => {
  // No key of its own: the mock accepts any, and records which one each call carried.
  llm = await startMockLlm({});
  slack = await startSlackEmulator({
    signingSecret: SLACK_SECRET,
    botToken: SLACK_TOKEN,
    botName: "lobu",
    subscriptions: ["app_mention", "message.im"],
  });
  slack.addUser({ id: "UALICE", name: "Alice" });
  tg = await startTelegramEmulator({
    botToken: TG_TOKEN,
    botUsername: "lobu_linking_bot",
    rateLimits: false,
  });
  gw = await startGatewayProcess({
    toml: [
      "[sandbox]",
      'idle_timeout = "10m"',
      "[platforms.slack]",
      'stream_interval = "200ms"',
      "[platforms.telegram]",
      'mode = "polling"',
      'stream_interval = "200ms"',
    ].join("\n"),
    env: {
      ANTHROPIC_API_KEY: GATEWAY_KEY,
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
  await slack?.close();
  await tg?.close();
  await llm?.close();
});

describe("one person across Slack, Telegram and REST", () => {
  let settings: SettingsSession;

  it("a forwarded code links nobody: Mallory gets a finishing code she cannot use", async () => {
    const code = codeIn(await slackDm("link", /code is/))!;
    // Mallory has alice's code (forwarded, read over her shoulder) and enters it.
    const taken = await tgSend(TG_MALLORY, `link ${code}`, /finishing code is/);
    expect(taken).toMatch(/^Almost there: nothing is linked yet/);
    const finish = codeIn(taken.replace("finishing code is", "code is"))!;
    // Finishing it herself (or passing it to another account of hers) is refused.
    expect(await tgSend(TG_MALLORY, `link ${finish}`, /unknown, used or expired/)).toBeTruthy();
    // Refused for good: alice's own offer and the finishing code are both used up.
    expect(await slackDm(`link ${finish}`, /unknown, used or expired/)).toBeTruthy();
    expect(await tgSend(TG_MALLORY, `link ${code}`, /unknown, used or expired/)).toBeTruthy();
    const res = await gw.api("/api/v1/admin/links");
    expect(((await res.json()) as { accounts: unknown[] }).accounts).toEqual([]);
    const audit = JSON.stringify(
      await (await gw.api("/api/v1/audit?action=identity.link_failed")).json(),
    );
    expect(audit).toContain("wrong_account");
  });

  it("guessing is locked out: after 5 wrong codes even the right one is refused", async () => {
    for (let i = 0; i < 5; i++)
      await tgSend(TG_EVE, `link ${String(i).repeat(5)}-ZZZZZ`, /unknown, used or expired/);
    const code = codeIn(await slackDm("link", /code is/))!;
    expect(await tgSend(TG_EVE, `link ${code}`, /too many wrong link codes/)).toMatch(
      /Wait 15 minutes/,
    );
  });

  it("links Slack alice and Telegram alice: a code shown on one, entered on the other, finished on the first", async () => {
    const code = codeIn(await slackDm("link", /code is/))!;
    expect(code).toBeDefined();
    // No agent turn for a link command: the gateway answers it itself.
    expect(llm.requests.filter((r) => r.lastUserText.includes("link"))).toEqual([]);
    const taken = await tgSend(TG_ALICE, `link ${code}`, /finishing code is/);
    const finish = codeIn(taken.replace("finishing code is", "code is"))!;
    expect(await slackDm(`link ${finish}`, /^Linked/)).toMatch(
      /^Linked: telegram::4242 now shares .* \(1 other account linked in all\)/,
    );
    // Replayed, by alice or by Mallory, either code: refused, and Mallory stays on her own.
    expect(await slackDm(`link ${finish}`, /unknown, used or expired/)).toBeTruthy();
    expect(await tgSend(TG_MALLORY, `/link ${code}`, /unknown, used or expired/)).toMatch(
      /Create a new code/,
    );
    settings = await slackSettings();
    const links = (await (await settings.call("GET", "/links")).json()) as {
      account: string;
      identities: string[];
    };
    expect(links.identities).toEqual([links.account, "telegram::4242"]);
    expect(links.account).toMatch(/^slack:T[^:]*:UALICE$/);
  });

  it("uses the key and model alice set on Slack for her Telegram turns", async () => {
    expect((await settings.call("PUT", "/keys/anthropic", { value: ALICE_KEY })).status).toBe(200);
    expect(
      (
        await settings.call("PUT", "/model", {
          provider: "anthropic",
          model: "claude-haiku-4-5",
        })
      ).status,
    ).toBe(200);
    llm.when((r) => r.lastUserText.endsWith("tg first question"), { text: "tg-answer-one" });
    await tgSend(TG_ALICE, "tg first question", "tg-answer-one");
    const call = llm.requests.filter((r) => r.lastUserText.endsWith("tg first question")).at(-1)!;
    expect(call.apiKey).toBe(ALICE_KEY);
    expect((call.body as { model?: string }).model).toBe("claude-haiku-4-5");
    // Mallory, not linked, runs on the gateway's key and default model.
    llm.when((r) => r.lastUserText.endsWith("mallory question"), { text: "mallory-answer" });
    await tgSend(TG_MALLORY, "mallory question", "mallory-answer");
    const hers = llm.requests.filter((r) => r.lastUserText.endsWith("mallory question")).at(-1)!;
    expect(hers.apiKey).toBe(GATEWAY_KEY);
  });

  it("recalls on Telegram what was remembered on Slack", async () => {
    llm.when((r) => r.lastUserText.endsWith("note my tea"), {
      toolCalls: [{ name: "remember", input: { text: "Alice drinks green tea, no sugar" } }],
    });
    llm.when((r) => r.lastUserText.endsWith("note my tea"), { text: "noted-tea" });
    await slackDm("note my tea", "noted-tea");
    llm.when((r) => r.lastUserText.endsWith("what do I drink"), {
      toolCalls: [{ name: "recall", input: { query: "tea" } }],
    });
    llm.when((r) => r.lastUserText.endsWith("what do I drink"), { text: "recalled-drink" });
    await tgSend(TG_ALICE, "what do I drink", "recalled-drink");
    const recalled = llm.requests
      .filter((r) => r.lastUserText.endsWith("what do I drink") && r.toolResults.length)
      .at(-1)!.toolResults[0]!;
    expect(recalled.content).toContain("Alice drinks green tea");
  });

  it("links a REST user with a code from Telegram; admins see the account", async () => {
    const code = codeIn(await tgSend(TG_ALICE, "link", /code is/))!;
    const events = await rest("alice", `link ${code}`);
    const taken = events.find((e) => e.type === "done") as { text?: string } | undefined;
    expect(taken?.text).toMatch(/^Almost there/);
    const finish = codeIn((taken?.text ?? "").replace("finishing code is", "code is"))!;
    expect(await tgSend(TG_ALICE, `link ${finish}`, /^Linked/)).toMatch(
      /^Linked: api::alice now shares .* \(2 other accounts linked in all\)/,
    );
    const res = await gw.api("/api/v1/admin/links");
    expect(res.status).toBe(200);
    const { accounts } = (await res.json()) as {
      accounts: { account: string; identities: string[] }[];
    };
    expect(accounts).toHaveLength(1);
    expect(accounts[0]!.identities.slice(1)).toEqual(["telegram::4242", "api::alice"]);
    // A guessed code from REST: refused, nothing linked.
    const guess = await rest("mallory", "link 00000-00000");
    expect(guess.find((e) => e.type === "done")).toMatchObject({
      text: expect.stringMatching(/unknown, used or expired/),
    });
  });

  it("links on the settings pages too: a code made on one, entered on the other's", async () => {
    const made = await settings.call("POST", "/links/code");
    expect(made.status).toBe(200);
    const { code } = (await made.json()) as { code: string };
    // Without the CSRF token the session cannot make or use a code.
    expect((await settings.call("POST", "/links/code", undefined, { csrf: false })).status).toBe(
      403,
    );
    const bob = await openSettings(gw, await apiSettingsLink(gw, "bob-second"));
    const res = await bob.call("POST", "/links/confirm", { code });
    expect(res.status).toBe(200);
    const pending = (await res.json()) as { identities: string[]; pending: { code: string } };
    expect(pending.identities).toEqual(["api::bob-second"]);
    // The same code again, from another session: used.
    const carol = await openSettings(gw, await apiSettingsLink(gw, "carol"));
    const again = await carol.call("POST", "/links/confirm", { code });
    expect(again.status).toBe(400);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe(
      "link_code_invalid",
    );
    // Bob's finishing code, approved by someone other than the code's creator: refused and used up.
    expect(
      (await carol.call("POST", "/links/confirm", { code: pending.pending.code })).status,
    ).toBe(400);
    expect(
      (await settings.call("POST", "/links/confirm", { code: pending.pending.code })).status,
    ).toBe(400);
    // A fresh handshake, finished on the creator's page: Bob joins.
    const offer = (await (await settings.call("POST", "/links/code")).json()) as { code: string };
    const second = (await (
      await bob.call("POST", "/links/confirm", { code: offer.code })
    ).json()) as {
      pending: { code: string };
    };
    const done = await settings.call("POST", "/links/confirm", { code: second.pending.code });
    expect(done.status).toBe(200);
    const view = (await done.json()) as { joined: string; identities: string[] };
    expect(view.joined).toBe("api::bob-second");
    expect(view.identities).toContain("telegram::4242");
    expect(view.identities).toContain("api::bob-second");
    // Bob unlinks himself from his own page.
    const gone = await bob.call("DELETE", `/links/${encodeURIComponent("api::bob-second")}`);
    expect(((await gone.json()) as { identities: string[] }).identities).toEqual([
      "api::bob-second",
    ]);
  });

  it("unlinks from the settings page: Telegram alice is on her own again", async () => {
    const res = await settings.call("DELETE", `/links/${encodeURIComponent("telegram::4242")}`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { identities: string[] }).identities).not.toContain(
      "telegram::4242",
    );
    // An identity outside the account cannot be unlinked from here.
    expect(
      (await settings.call("DELETE", `/links/${encodeURIComponent("telegram::6666")}`)).status,
    ).toBe(404);
    llm.when((r) => r.lastUserText.endsWith("after unlink"), {
      toolCalls: [{ name: "recall", input: { query: "tea" } }],
    });
    llm.when((r) => r.lastUserText.endsWith("after unlink"), { text: "unlinked-answer" });
    await tgSend(TG_ALICE, "after unlink", "unlinked-answer");
    const calls = llm.requests.filter((r) => r.lastUserText.endsWith("after unlink"));
    expect(calls[0]!.apiKey).toBe(GATEWAY_KEY);
    expect(JSON.stringify(calls.at(-1)!.toolResults)).not.toContain("green tea");
    const audit = await (await gw.api("/api/v1/audit?action=identity.unlinked")).json();
    expect(JSON.stringify(audit)).toContain("telegram::4242");
    // Link commands stay out of the history the agent reads: no code reached the model.
    expect(shown.length).toBeGreaterThanOrEqual(2);
    const seen = JSON.stringify(llm.requests.map((r) => r.body));
    for (const code of shown) expect(seen).not.toContain(code);
  });
});
