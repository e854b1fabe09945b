import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Bot, type GrammyError, InlineKeyboard, webhookCallback } from "grammy";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTelegramEmulator, type TelegramEmulator } from "../../src/platforms.ts";

const TOKEN = "555000111:AAE-updates-test-token-000000000";
const ALICE = { id: 2001, first_name: "Alice", username: "alice" };
const DM = { id: 2001, type: "private" as const };
const GROUP = { id: -100777, type: "supergroup" as const, title: "Team" };

let emu: TelegramEmulator;

function newBot(): Bot {
  return new Bot(TOKEN, { client: { apiRoot: emu.url } });
}

async function listenHttp(
  handler: Parameters<typeof createServer>[1],
): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/telegram/webhook`,
    server,
  };
}

function closeHttp(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

beforeAll(async () => {
  emu = await startTelegramEmulator({
    botToken: TOKEN,
    botUsername: "lobu_test_bot",
    webhookRetryDelaysMs: [20, 20],
  });
});
afterAll(() => emu.close());
beforeEach(async () => {
  emu.reset();
  await newBot().api.deleteWebhook();
});

describe("long polling", () => {
  it("holds getUpdates until an update arrives and confirms by offset", async () => {
    const api = newBot().api;
    const polling = api.getUpdates({ timeout: 30 });
    await emu.waitFor(() => emu.polling);
    const sent = emu.userSends({ chat: DM, from: ALICE, text: "/start hello" });
    const updates = await polling;
    expect(updates).toHaveLength(1);
    expect(updates[0]?.update_id).toBe(sent.update.update_id);
    expect(updates[0]?.message).toMatchObject({
      text: "/start hello",
      chat: { id: DM.id, type: "private", first_name: "Alice" },
      from: { id: ALICE.id, is_bot: false, username: "alice" },
      entities: [{ type: "bot_command", offset: 0, length: 6 }],
    });

    // Not confirmed yet: comes again; confirmed by offset = last + 1.
    expect(await api.getUpdates({ timeout: 0 })).toHaveLength(1);
    expect(await api.getUpdates({ offset: sent.update.update_id + 1, timeout: 0 })).toEqual([]);
    expect(emu.pendingUpdates).toHaveLength(0);
  });

  it("runs a grammY bot end to end with bot.start()", async () => {
    const bot = newBot();
    bot.command("start", (ctx) => ctx.reply("Welcome\\!", { parse_mode: "MarkdownV2" }));
    bot.on("message:text", (ctx) => ctx.reply(`echo: ${ctx.message.text}`));
    void bot.start({ drop_pending_updates: true });
    try {
      await emu.waitFor(() => emu.polling);
      emu.userSends({ chat: DM, from: ALICE, text: "/start" });
      emu.userSends({ chat: DM, from: ALICE, text: "ping" });
      const replies = await emu.waitFor(() => {
        const texts = emu.messages(DM.id).map((m) => m.text);
        return texts.length === 2 ? texts : undefined;
      });
      expect(replies).toEqual(["Welcome!", "echo: ping"]);
    } finally {
      await bot.stop();
    }
  });

  it("applies group privacy mode", async () => {
    const plain = emu.userSends({ chat: GROUP, from: ALICE, text: "just chatting" });
    const mention = emu.userSends({ chat: GROUP, from: ALICE, text: "hey @lobu_test_bot help" });
    const command = emu.userSends({ chat: GROUP, from: ALICE, text: "/ask@lobu_test_bot now" });
    const other = emu.userSends({ chat: GROUP, from: ALICE, text: "/ask@other_bot now" });
    expect([plain, mention, command, other].map((r) => r.delivered)).toEqual([
      false,
      true,
      true,
      false,
    ]);
    expect(mention.message.entities).toEqual([{ type: "mention", offset: 4, length: 14 }]);
    const updates = await newBot().api.getUpdates({ timeout: 0 });
    expect(updates.map((u) => u.message?.text)).toEqual([
      "hey @lobu_test_bot help",
      "/ask@lobu_test_bot now",
    ]);
  });

  it("delivers callback queries and records answers", async () => {
    const bot = newBot();
    emu.userSends({ chat: DM, from: ALICE, text: "hi" });
    const sent = await bot.api.sendMessage(DM.id, "Approve?", {
      reply_markup: new InlineKeyboard().text("Yes", "approve:1").text("No", "deny:1"),
    });
    bot.callbackQuery(/approve:(\d+)/, async (ctx) => {
      await ctx.answerCallbackQuery({ text: "Approved" });
      await ctx.editMessageText("Approved ✅");
    });
    void bot.start();
    try {
      const click = emu.clickCallback({
        from: ALICE,
        chatId: DM.id,
        messageId: sent.message_id,
        data: "approve:1",
      });
      await emu.waitFor(() =>
        emu.callbackAnswers.find((a) => a.callbackQueryId === click.callbackQueryId),
      );
      expect(emu.callbackAnswers[0]).toMatchObject({ text: "Approved", showAlert: false });
      await emu.waitFor(() => emu.message(DM.id, sent.message_id)?.text === "Approved ✅");
      const again = await bot.api
        .answerCallbackQuery(click.callbackQueryId)
        .catch((e: GrammyError) => e);
      expect((again as GrammyError).description).toBe(
        "Bad Request: query is too old and response timeout expired or query ID is invalid",
      );
    } finally {
      await bot.stop();
    }
    expect(() =>
      emu.clickCallback({ from: ALICE, chatId: DM.id, messageId: sent.message_id, data: "nope" }),
    ).toThrow(/no button with callback_data "nope"/);
  });

  it("terminates an older poller with 409 and honours allowed_updates", async () => {
    const api = newBot().api;
    const first = api.getUpdates({ timeout: 30 }).catch((e: unknown) => e);
    await emu.waitFor(() => emu.polling);
    const second = api.getUpdates({ timeout: 0, allowed_updates: ["callback_query"] });
    const err = (await first) as GrammyError;
    expect(err.error_code).toBe(409);
    expect(err.description).toBe(
      "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    );
    await second;
    expect(emu.userSends({ chat: DM, from: ALICE, text: "filtered" }).delivered).toBe(false);
    await api.getUpdates({ timeout: 0, allowed_updates: [] });
    expect(emu.userSends({ chat: DM, from: ALICE, text: "kept" }).delivered).toBe(true);
  });
});

describe("webhooks", () => {
  let server: Server | undefined;
  afterEach(async () => {
    if (server) await closeHttp(server);
    server = undefined;
  });

  it("posts updates with the secret token to a grammY webhook handler", async () => {
    // Let grammY answer sendMessage inside the webhook response (a "webhook reply").
    const bot = new Bot(TOKEN, {
      client: { apiRoot: emu.url, canUseWebhookReply: (method) => method === "sendMessage" },
    });
    await bot.init();
    bot.on("message:text", (ctx) => ctx.reply(`got ${ctx.message.text}`));
    const hook = await listenHttp(webhookCallback(bot, "http", { secretToken: "s3cr3t_T0ken" }));
    server = hook.server;
    const set = await bot.api.setWebhook(hook.url, { secret_token: "s3cr3t_T0ken" });
    expect(set).toBe(true);
    expect(emu.webhook).toMatchObject({ url: hook.url, secretToken: "s3cr3t_T0ken" });

    const polling = await bot.api.getUpdates().catch((e: GrammyError) => e);
    expect((polling as GrammyError).error_code).toBe(409);
    expect((polling as GrammyError).description).toBe(
      "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
    );

    emu.userSends({ chat: DM, from: ALICE, text: "over webhook" });
    await emu.waitFor(() => emu.messages(DM.id).find((m) => m.text === "got over webhook"));
    expect(emu.webhookDeliveries[0]).toMatchObject({
      status: 200,
      attempt: 1,
      secretToken: "s3cr3t_T0ken",
    });
    // grammY answers with the method in the response body (webhook reply).
    expect(emu.calls.find((c) => c.method === "sendMessage")?.via).toBe("webhook_reply");
  });

  it("retries failed deliveries with the same update_id and reports the error", async () => {
    const seen: { updateId: number; secret: string | undefined }[] = [];
    let failures = 1;
    const hook = await listenHttp((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString();
      });
      req.on("end", () => {
        seen.push({
          updateId: JSON.parse(body).update_id,
          secret: req.headers["x-telegram-bot-api-secret-token"] as string | undefined,
        });
        res.writeHead(failures-- > 0 ? 500 : 200).end();
      });
    });
    server = hook.server;
    const api = newBot().api;
    await api.setWebhook(hook.url, { secret_token: "abc" });
    const sent = emu.userSends({ chat: DM, from: ALICE, text: "retry me" });
    await emu.waitFor(() => emu.webhookDeliveries.find((d) => d.status === 200));
    expect(seen).toEqual([
      { updateId: sent.update.update_id, secret: "abc" },
      { updateId: sent.update.update_id, secret: "abc" },
    ]);
    const info = await api.getWebhookInfo();
    expect(info).toMatchObject({
      url: hook.url,
      pending_update_count: 0,
      last_error_message: "Wrong response from the webhook: 500 Internal Server Error",
    });
  });

  it("gives up after the retry schedule and keeps updates when the webhook is removed", async () => {
    const hook = await listenHttp((_req, res) => res.writeHead(502).end());
    server = hook.server;
    const api = newBot().api;
    await api.setWebhook(hook.url);
    const dropped = emu.userSends({ chat: DM, from: ALICE, text: "lost" });
    await emu.waitFor(
      () =>
        emu.webhookDeliveries.filter((d) => d.updateId === dropped.update.update_id).length === 3,
    );
    await emu.waitFor(() => emu.pendingUpdates.length === 0);
    expect(await api.deleteWebhook()).toBe(true);
    const kept = emu.userSends({ chat: DM, from: ALICE, text: "kept" });
    expect((await api.getUpdates({ timeout: 0 })).map((u) => u.update_id)).toEqual([
      kept.update.update_id,
    ]);
  });
});
