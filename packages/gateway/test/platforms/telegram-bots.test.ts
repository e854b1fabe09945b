import {
  type GatewayProcess,
  type MockLlm,
  startGatewayProcess,
  startMockLlm,
  startTelegramEmulator,
  type TelegramBotSim,
  type TelegramEmulator,
  type TelegramMessage,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ASK_BASH_TOML, llmEnv, PROVIDER_KEY, slowText, WAIT } from "./helpers.ts";

/**
 * Several Telegram bots in one gateway, one per agent: the TELEGRAM_BOT_TOKEN
 * bot answers as "sales", the `[platforms.telegram.bots.support]` bot as
 * "support". Both sit in one group; each answers as itself through its own
 * token, keeps its own conversations, and takes updates only with its own
 * webhook secret and Mini App initData only signed with its own token.
 */

const SALES_TOKEN = "7100000001:AAsales-bot-token";
const SUPPORT_TOKEN = "7100000002:AAsupport-bot-token";
const SALES_SECRET = "sales-webhook-secret";
const SUPPORT_SECRET = "support-webhook-secret";
const GROUP = { id: -100_777, type: "supergroup" as const, title: "Team" };
const ANN = { id: 5001, first_name: "Ann", username: "ann" };

let llm: MockLlm;
let tg: TelegramEmulator;
let sales: TelegramBotSim;
let support: TelegramBotSim;
let gw: GatewayProcess;

function waitForBotText(
  bot: TelegramBotSim,
  chatId: number,
  text: string,
): Promise<TelegramMessage> {
  return tg.waitFor(() => bot.messages(chatId).find((m) => m.fromBot && m.text === text), {
    ...WAIT,
    description: `${bot.username} saying "${text}"`,
  });
}

function postWebhook(path: string, secret: string, body: unknown): Promise<Response> {
  return fetch(`${gw.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
    body: JSON.stringify(body),
  });
}

interface Conversation {
  id: string;
  key: { platform: string; workspace: string; userId: string; channelId: string };
}

async function conversationsOf(agent: string, userId: string): Promise<Conversation[]> {
  const res = await gw.api(`/api/v1/agents/${agent}/conversations?user=${userId}`);
  return ((await res.json()) as { conversations: Conversation[] }).conversations;
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  tg = await startTelegramEmulator({
    botToken: SALES_TOKEN,
    botUsername: "sales_bot",
    rateLimits: false,
  });
  sales = tg.bot();
  support = tg.addBot({ botToken: SUPPORT_TOKEN, botUsername: "support_bot" });
  gw = await startGatewayProcess({
    toml: [
      ...ASK_BASH_TOML,
      "[schedules]",
      'poll_interval = "200ms"',
      "",
      "[agents.sales]",
      'name = "Sales"',
      'model = "sales-model"',
      "",
      "[agents.support]",
      'name = "Support"',
      'model = "support-model"',
      "",
      "[agents.support.policy]",
      'tools = { bash = "ask" }',
      "",
      "[platforms.telegram]",
      'mode = "webhook"',
      'agent = "sales"',
      'stream_interval = "200ms"',
      'group_stream_interval = "200ms"',
      "",
      "[platforms.telegram.bots.support]",
      'agent = "support"',
      'bot_token_env = "SUPPORT_BOT_TOKEN"',
      'webhook_secret_env = "SUPPORT_WEBHOOK_SECRET"',
    ].join("\n"),
    env: {
      ...llmEnv(llm),
      TELEGRAM_BOT_TOKEN: SALES_TOKEN,
      TELEGRAM_WEBHOOK_SECRET: SALES_SECRET,
      SUPPORT_BOT_TOKEN: SUPPORT_TOKEN,
      SUPPORT_WEBHOOK_SECRET: SUPPORT_SECRET,
      TELEGRAM_API_ROOT: tg.url,
    },
  });
  await tg.waitFor(() => sales.webhook && support.webhook, { ...WAIT, description: "setWebhook" });
});

afterAll(async () => {
  await gw?.stop();
  await tg?.close();
  await llm?.close();
});

describe("Telegram: several bots in one gateway", () => {
  it("gives each bot its own webhook path and secret token", () => {
    expect(sales.webhook).toMatchObject({
      url: `${gw.url}/telegram/webhook`,
      secretToken: SALES_SECRET,
    });
    expect(support.webhook).toMatchObject({
      url: `${gw.url}/telegram/support/webhook`,
      secretToken: SUPPORT_SECRET,
    });
  });

  it("answers in one group as two agents, each through its own bot", async () => {
    llm.when((r) => r.model === "sales-model" && r.lastUserText === "who are you?", {
      text: "Sales here.",
    });
    llm.when((r) => r.model === "support-model" && r.lastUserText === "who are you?", {
      text: "Support here.",
    });
    expect(
      sales.userSends({ chat: GROUP, from: ANN, text: "@sales_bot who are you?" }).delivered,
    ).toBe(true);
    expect(
      support.userSends({ chat: GROUP, from: ANN, text: "@support_bot who are you?" }).delivered,
    ).toBe(true);
    await waitForBotText(sales, GROUP.id, "Sales here.");
    await waitForBotText(support, GROUP.id, "Support here.");
    // Neither bot said the other's words: every reply and edit went out with the token that got the message.
    expect(sales.messages(GROUP.id).some((m) => m.text === "Support here.")).toBe(false);
    expect(support.messages(GROUP.id).some((m) => m.text === "Sales here.")).toBe(false);

    // Two conversations: the bot is part of the conversation's key.
    const [salesConv] = await conversationsOf("sales", String(ANN.id));
    const [supportConv] = await conversationsOf("support", String(ANN.id));
    expect(salesConv?.key).toMatchObject({ workspace: "", channelId: String(GROUP.id) });
    expect(supportConv?.key).toMatchObject({ workspace: "support", channelId: String(GROUP.id) });
    expect(salesConv?.id).not.toBe(supportConv?.id);
  });

  it("takes the same update on both bots' webhooks as two messages (no shared dedupe)", async () => {
    // A rule answers once: one for each bot's agent (the group's history comes first in the text).
    for (const model of ["sales-model", "support-model"])
      llm.when((r) => r.model === model && r.lastUserText.endsWith("twin update"), {
        text: "Twin answered.",
      });
    // Both bots know the group and its member (the access check asks Telegram about the sender).
    sales.ensureChat(GROUP, ANN);
    support.ensureChat(GROUP, ANN);
    const update = (botId: number) => ({
      update_id: 900_001,
      message: {
        message_id: 77_001,
        date: Math.floor(Date.now() / 1000),
        chat: GROUP,
        from: { ...ANN, is_bot: false },
        text: "twin update",
        reply_to_message: {
          message_id: 1,
          date: 0,
          chat: GROUP,
          from: { id: botId, is_bot: true, first_name: "bot" },
        },
      },
    });
    expect((await postWebhook("/telegram/webhook", SALES_SECRET, update(sales.id))).status).toBe(
      200,
    );
    expect(
      (await postWebhook("/telegram/support/webhook", SUPPORT_SECRET, update(support.id))).status,
    ).toBe(200);
    await waitForBotText(sales, GROUP.id, "Twin answered.");
    await waitForBotText(support, GROUP.id, "Twin answered.");
  });

  it("refuses an update sent to one bot's webhook with the other bot's secret", async () => {
    const calls = llm.requests.length;
    const forged = {
      update_id: 900_100,
      message: {
        message_id: 77_100,
        date: Math.floor(Date.now() / 1000),
        chat: { id: 5003, type: "private" },
        from: { id: 5003, is_bot: false, first_name: "Eve" },
        text: "let me in",
      },
    };
    for (const [path, secret] of [
      ["/telegram/support/webhook", SALES_SECRET],
      ["/telegram/webhook", SUPPORT_SECRET],
      ["/telegram/support/webhook", ""],
    ] as const) {
      const res = await postWebhook(path, secret, forged);
      expect(res.status, `${path} with ${secret || "no secret"}`).toBe(401);
    }
    expect(llm.requests.length).toBe(calls);
    expect(await conversationsOf("support", "5003")).toEqual([]);
    expect(await conversationsOf("sales", "5003")).toEqual([]);
  });

  it("verifies Mini App initData against the token of the bot it names", async () => {
    const tess = { id: 4243, first_name: "Tess" };
    const bySupport = tg.webAppInitData({ user: tess, botToken: SUPPORT_TOKEN });
    const bySales = tg.webAppInitData({ user: tess });
    const verify = (path: string, initData: string) =>
      fetch(`${gw.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ initData }),
      });
    // The stateless check: each bot's route takes only what that bot signed.
    expect((await verify("/telegram/support/webapp/verify", bySales)).status).toBe(401);
    expect((await verify("/telegram/webapp/verify", bySupport)).status).toBe(401);
    const ok = await verify("/telegram/support/webapp/verify", bySupport);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ userKey: "telegram:support:4243" });

    const login = (initData: string, bot?: string) =>
      fetch(`${gw.url}/settings/api/session/telegram`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ initData, ...(bot !== undefined ? { bot } : {}) }),
      });
    // Signed by the other bot, or naming a bot that is not here: refused.
    expect((await login(bySales, "support")).status).toBe(401);
    expect((await login(bySupport)).status).toBe(401);
    expect((await login(bySupport, "nobody")).status).toBe(401);
    const res = await login(bySupport, "support");
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const state = await fetch(`${gw.url}/settings/api/state`, {
      headers: { "x-lobu-session": token },
    });
    // The person of that bot, on that bot's agent.
    expect(await state.json()).toMatchObject({
      user: { userKey: "telegram:support:4243" },
      agent: { id: "support" },
    });
  });

  it("sends its settings as its own Mini App, which lands naming the bot", async () => {
    const cy = { id: 5004, first_name: "Cy" };
    const dm = { id: cy.id, type: "private" as const };
    support.userSends({ chat: dm, from: cy, text: "/settings" });
    const button = await tg.waitFor(
      () =>
        support
          .messages(dm.id)
          .flatMap((m) => m.replyMarkup?.inline_keyboard.flat() ?? [])
          .find((b) => b.web_app),
      { ...WAIT, description: "the support bot's settings button" },
    );
    expect(sales.messages(dm.id)).toEqual([]);
    const res = await fetch(button.web_app?.url ?? "", {
      method: "POST",
      redirect: "manual",
      headers: { origin: gw.url, "content-type": "application/x-www-form-urlencoded" },
      body: "fragment=",
    });
    expect(res.status).toBe(303);
    // The page then checks its initData against this bot's token.
    expect(res.headers.get("location")).toBe("/settings?bot=support");
  });

  it("stops a reply with its own bot's Stop button, and only that bot's reply", async () => {
    const dee = { id: 5005, first_name: "Dee", username: "dee" };
    const team = { id: -100_778, type: "supergroup" as const, title: "Stops" };
    for (const [model, bot] of [
      ["sales-model", "sales_bot"],
      ["support-model", "support_bot"],
    ] as const)
      llm.when(
        (r) => r.model === model && r.lastUserText.endsWith("talk for a while"),
        slowText(`${bot} `.repeat(60), 60, 100),
      );
    sales.userSends({ chat: team, from: dee, text: "@sales_bot talk for a while" });
    support.userSends({ chat: team, from: dee, text: "@support_bot talk for a while" });
    const streaming = (bot: TelegramBotSim) =>
      tg.waitFor(
        () =>
          bot
            .messages(team.id)
            .find(
              (m) =>
                m.fromBot &&
                m.text?.startsWith(bot.username) &&
                m.replyMarkup?.inline_keyboard
                  .flat()
                  .some((b) => b.callback_data?.startsWith("lobu-stop")),
            ),
        { ...WAIT, description: `${bot.username} streaming with Stop buttons` },
      );
    const [, supportReply] = await Promise.all([streaming(sales), streaming(support)]);
    const stop = supportReply.replyMarkup?.inline_keyboard
      .flat()
      .find((b) => b.callback_data?.startsWith("lobu-stop"))?.callback_data as string;
    support.clickCallback({
      chatId: team.id,
      messageId: supportReply.messageId,
      from: dee,
      data: stop,
    });
    await tg.waitFor(
      () => support.findMessage(team.id, supportReply.messageId)?.text?.includes("⏹️ Stopped by"),
      {
        ...WAIT,
        description: "the support reply saying it was stopped",
      },
    );
    // The sales bot's reply in the same group runs on to its end.
    await tg.waitFor(
      () =>
        sales
          .messages(team.id)
          .find((m) => m.fromBot && m.text?.trim() === "sales_bot ".repeat(60).trim()),
      { ...WAIT, description: "the sales reply finished" },
    );
  });

  it("delivers a reminder set through a bot later through that same bot", async () => {
    const fay = { id: 5006, first_name: "Fay" };
    const dm = { id: fay.id, type: "private" as const };
    llm.when(
      (r) => r.model === "support-model" && r.lastUserText.includes("remind me to stretch"),
      { toolCalls: [{ name: "schedule", input: { text: "Stretch now", in: "2s" } }] },
      { text: "Will remind you." },
    );
    support.userSends({ chat: dm, from: fay, text: "remind me to stretch" });
    await tg.waitFor(
      () =>
        support
          .messages(dm.id)
          .find(
            (m) =>
              m.fromBot &&
              m.text?.includes("[scheduled: reminder") &&
              m.text.includes("Stretch now"),
          ),
      { timeoutMs: 60_000, description: "the reminder's turn through the support bot" },
    );
    expect(sales.messages(dm.id)).toEqual([]);
  });

  it("shows a request card and takes its answer through the bot that got the message", async () => {
    const dm = { id: ANN.id, type: "private" as const };
    llm.when(
      (r) => r.model === "support-model" && r.lastUserText === "run it",
      { toolCalls: [{ name: "bash", input: { command: "echo from-support" } }] },
      (r) => ({ text: `Support ran it: ${r.toolResults[0]?.content.trim()}` }),
    );
    support.userSends({ chat: dm, from: ANN, text: "run it" });
    const card = await tg.waitFor(
      () =>
        support
          .messages(dm.id)
          .find((m) =>
            m.replyMarkup?.inline_keyboard
              .flat()
              .some((b) => b.callback_data && !b.callback_data.startsWith("lobu-stop")),
          ),
      { ...WAIT, description: "the support bot's approval card" },
    );
    expect(sales.messages(dm.id).some((m) => m.fromBot)).toBe(false);
    const approve = card.replyMarkup?.inline_keyboard
      .flat()
      .find((b) => b.text === "Approve")?.callback_data;
    expect(approve).toBeDefined();
    support.clickCallback({
      chatId: dm.id,
      messageId: card.messageId,
      from: ANN,
      data: approve as string,
    });
    await waitForBotText(support, dm.id, "Support ran it: from-support");
  });
});
