import {
  type GatewayProcess,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
  startTelegramEmulator,
  type TelegramEmulator,
  type TelegramMessage,
  type TgUserInput,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drainedQueue, llmEnv, PROVIDER_KEY, queueDepth, WAIT } from "./helpers.ts";

/**
 * Access rules and ambient mode on Telegram: a group's administrators
 * (getChatAdministrators) as a platform group, and group chatter taken under
 * a keyword rule once privacy mode is off (docs/platforms/telegram.md).
 */

const BOT_TOKEN = "7000000002:AAtelegram-access-token";
const WEBHOOK_SECRET = "webhook-secret_for-access";
const ADMINS_ONLY = -100900;
const AMBIENT = -100901;
const BINDABLE = -100903;

let llm: MockLlm;
let tg: TelegramEmulator;
let gw: GatewayProcess;

const person = (id: number, first_name: string): TgUserInput => ({ id, first_name });
const boss = person(2001, "Boss");
const staff = person(2002, "Staff");

function waitForText(chatId: number, needle: string): Promise<TelegramMessage> {
  return tg.waitFor(() => tg.messages(chatId).find((m) => m.text?.includes(needle)), {
    ...WAIT,
    description: `a message containing "${needle}"`,
  });
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  tg = await startTelegramEmulator({
    botToken: BOT_TOKEN,
    botUsername: "lobu_access_bot",
    rateLimits: false,
    privacyMode: false,
  });
  gw = await startGatewayProcess({
    toml: [
      "[agents.default.access]",
      `allow.groups = ["telegram::admins"]`,
      `allow.users = ["telegram::${staff.id}"]`,
      `allow.channels = ["telegram::${ADMINS_ONLY}", "telegram::${AMBIENT}"]`,
      "",
      "[agents.helper]",
      "bindable = true",
      "",
      `[channels."telegram::${AMBIENT}"]`,
      'ambient = { mode = "keywords", keywords = ["deploy"], per_minute = 10 }',
      "",
      "[platforms.telegram]",
      'mode = "webhook"',
    ].join("\n"),
    env: {
      ...llmEnv(llm),
      TELEGRAM_BOT_TOKEN: BOT_TOKEN,
      TELEGRAM_API_ROOT: tg.url,
      TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
    },
  });
  await tg.waitFor(() => tg.webhook, { ...WAIT, description: "setWebhook" });
  for (const id of [ADMINS_ONLY, AMBIENT, BINDABLE]) {
    tg.userSends({ chat: { id, type: "supergroup", title: `g${id}` }, from: boss, text: "hi all" });
    tg.setChatAdmins(id, [boss]);
  }
  await drainedQueue(gw);
});

afterAll(async () => {
  await gw?.stop();
  await tg?.close();
  await llm?.close();
});

/**
 * Group messages reach the agent after the group's earlier ones (as data,
 * docs/context.md), their own text last: answer `text` with its echo.
 */
function echoes(text: string): void {
  llm.when((r) => r.lastUserText.endsWith(text), { text: `echo: ${text}` });
}

const group = (id: number) => ({ id, type: "supergroup" as const, title: `g${id}` });

describe("Telegram: who may use the agent", () => {
  it("answers a group's administrator and a listed person; refuses everyone else, at no cost", async () => {
    echoes("status");
    echoes("listed");
    tg.userSends({ chat: group(ADMINS_ONLY), from: boss, text: "@lobu_access_bot status" });
    await waitForText(ADMINS_ONLY, "echo: status");
    tg.userSends({ chat: group(ADMINS_ONLY), from: staff, text: "@lobu_access_bot listed" });
    await waitForText(ADMINS_ONLY, "echo: listed");
    expect(tg.calls.some((c) => c.method === "getChatAdministrators")).toBe(true);

    await drainedQueue(gw);
    const calls = llm.requests.length;
    const stranger = person(2003, "Stranger");
    tg.userSends({ chat: group(ADMINS_ONLY), from: stranger, text: "@lobu_access_bot me too" });
    await waitForText(ADMINS_ONLY, "not on this agent's list");
    expect(await queueDepth(gw)).toBe(0);
    expect(llm.requests.length).toBe(calls);
  });

  it("refuses a group outside the allowed channels", async () => {
    const other = -100902;
    tg.userSends({ chat: group(other), from: boss, text: "@lobu_access_bot here?" });
    await waitForText(other, "not enabled in this channel");
  });
});

describe("Telegram: ambient mode", () => {
  it("takes group chatter that names a keyword, and nothing else", async () => {
    const calls = llm.requests.length;
    echoes("when do we deploy");
    tg.userSends({ chat: group(AMBIENT), from: boss, text: "lunch anyone" });
    tg.userSends({ chat: group(AMBIENT), from: boss, text: "when do we deploy" });
    await waitForText(AMBIENT, "echo: when do we deploy");
    await drainedQueue(gw);
    const asked = llm.requests.slice(calls).map((r) => r.lastUserText);
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(/\nwhen do we deploy$/);
  });
});

describe("Telegram: a group administrator binds the group", () => {
  it("/bind works for administrators only, then the bound agent answers there", async () => {
    tg.userSends({ chat: group(BINDABLE), from: staff, text: "/bind helper" });
    await waitForText(BINDABLE, "Only the channel's admins");
    tg.userSends({ chat: group(BINDABLE), from: boss, text: "/bind helper" });
    await waitForText(BINDABLE, 'now talks to the agent "helper"');
    // The default agent would refuse this group (not in its allow.channels); helper has no rules.
    const stranger = person(2004, "Visitor");
    echoes("hello helper");
    tg.userSends({ chat: group(BINDABLE), from: stranger, text: "@lobu_access_bot hello helper" });
    await waitForText(BINDABLE, "echo: hello helper");
  });
});
