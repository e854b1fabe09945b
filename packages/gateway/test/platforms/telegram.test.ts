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
import {
  ASK_BASH_TOML,
  conversationsOf,
  drainedQueue,
  historyOf,
  llmEnv,
  PROVIDER_KEY,
  queueDepth,
  slowText,
  telegramEnv,
  WAIT,
  waitForHistory,
} from "./helpers.ts";

/**
 * The Telegram adapter end to end: the Bot API emulator, a real `lobu run`
 * gateway (webhook mode), real sandboxed workers and the mock LLM.
 */

const BOT_TOKEN = "7000000001:AAtelegram-test-token";
const WEBHOOK_SECRET = "webhook-secret_for-tests";

let llm: MockLlm;
let tg: TelegramEmulator;
let gw: GatewayProcess;

const person = (id: number, first_name: string): TgUserInput => ({
  id,
  first_name,
  username: first_name.toLowerCase(),
});
const privateChat = (u: TgUserInput) => ({ id: u.id, type: "private" as const });

/** The bot message in a chat (optionally a forum topic) whose text reads `text`. */
function waitForReply(chatId: number, text: string, threadId?: number): Promise<TelegramMessage> {
  return tg.waitFor(
    () =>
      tg.messages(chatId, threadId !== undefined ? { threadId } : {}).find((m) => m.text === text),
    { ...WAIT, description: `the reply "${text}"` },
  );
}

function waitForCard(chatId: number): Promise<TelegramMessage> {
  return tg.waitFor(
    () =>
      tg
        .messages(chatId)
        // A request card (the streaming reply's Stop buttons are not one).
        .find((m) =>
          m.replyMarkup?.inline_keyboard
            .flat()
            .some((b) => b.callback_data && !b.callback_data.startsWith("lobu-stop")),
        ),
    { ...WAIT, description: "a card with buttons" },
  );
}

function callbackOf(card: TelegramMessage, label: string): string {
  const button = card.replyMarkup?.inline_keyboard.flat().find((b) => b.text === label);
  if (!button?.callback_data) throw new Error(`no button "${label}"`);
  return button.callback_data;
}

function postWebhook(body: unknown, secret = WEBHOOK_SECRET): Promise<Response> {
  return fetch(`${gw.url}/telegram/webhook`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: PROVIDER_KEY });
  tg = await startTelegramEmulator({
    botToken: BOT_TOKEN,
    botUsername: "lobu_test_bot",
    rateLimits: false,
  });
  gw = await startGatewayProcess({
    toml: [
      ...ASK_BASH_TOML,
      "[platforms.telegram]",
      'mode = "webhook"',
      'stream_interval = "200ms"',
      'group_stream_interval = "200ms"',
      'init_data_max_age = "1h"',
    ].join("\n"),
    env: {
      ...llmEnv(llm),
      ...telegramEnv(tg, BOT_TOKEN),
      TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
    },
  });
  await tg.waitFor(() => tg.webhook, { ...WAIT, description: "setWebhook" });
});

afterAll(async () => {
  await gw?.stop();
  await tg?.close();
  await llm?.close();
});

describe("Telegram: conversations", () => {
  it("registers its webhook with the secret token", () => {
    expect(tg.webhook).toMatchObject({
      url: `${gw.url}/telegram/webhook`,
      secretToken: WEBHOOK_SECRET,
    });
    expect(tg.webhook?.allowedUpdates).toEqual(["message", "callback_query"]);
  });

  it("streams a reply to a private message by editing it, typing meanwhile", async () => {
    const ada = person(1001, "Ada");
    const answer = "Private chats get streamed replies, edited in place as they grow.";
    llm.when((r) => r.lastUserText === "hello bot", slowText(answer));
    const sent = tg.userSends({ chat: privateChat(ada), from: ada, text: "hello bot" });
    expect(sent.delivered).toBe(true);
    const reply = await waitForReply(ada.id, answer);
    const edits = tg.calls.filter(
      (c) => c.method === "editMessageText" && c.params.message_id === reply.messageId,
    );
    expect(edits.length).toBeGreaterThanOrEqual(3);
    expect(reply.edits.length).toBeGreaterThanOrEqual(2);
    expect(tg.chatActions.some((a) => a.chatId === ada.id && a.action === "typing")).toBe(true);
    expect(tg.messages(ada.id)).toHaveLength(1);
  });

  it("sends Markdown as Telegram formatting", async () => {
    const bob = person(1002, "Bob");
    llm.when((r) => r.lastUserText === "format it", {
      text: "**Bold** and `code` with a [link](https://example.com)\n\n```js\nx < y\n```",
    });
    tg.userSends({ chat: privateChat(bob), from: bob, text: "format it" });
    const reply = await waitForReply(bob.id, "Bold and code with a link\n\nx < y");
    expect(reply.parseMode).toBe("HTML");
    expect(reply.entities?.map((e) => e.type)).toEqual(
      expect.arrayContaining(["bold", "code", "text_link", "pre"]),
    );
  });

  it("waits out flood control (429 retry_after) and still delivers the final text", async () => {
    const rex = person(1008, "Rex");
    const answer = "Flood control only slows the stream down; the answer still arrives.";
    llm.when((r) => r.lastUserText === "flood me", slowText(answer));
    tg.forceRateLimit("editMessageText", { retryAfter: 1 });
    tg.userSends({ chat: privateChat(rex), from: rex, text: "flood me" });
    const reply = await waitForReply(rex.id, answer);
    expect(tg.calls.some((c) => c.method === "editMessageText" && c.httpStatus === 429)).toBe(true);
    expect(tg.messages(rex.id)).toEqual([reply]);
  });

  it("sends plain text when Telegram refuses the formatting", async () => {
    const sam = person(1009, "Sam");
    llm.when((r) => r.lastUserText === "refused markup", { text: "Some **bold** words" });
    tg.failNext("sendMessage", 'can\'t parse entities: Unsupported start tag "b" at byte offset 5');
    tg.userSends({ chat: privateChat(sam), from: sam, text: "refused markup" });
    const reply = await waitForReply(sam.id, "Some bold words");
    expect(reply.via).toBe("sendMessage");
    expect(
      tg.calls
        .filter((c) => c.method === "sendMessage" && c.params.chat_id === sam.id)
        .map((c) => c.params.parse_mode),
    ).toEqual(["HTML", undefined]);
  });

  it("splits a long reply into messages of at most 4096 characters", async () => {
    const tia = person(1015, "Tia");
    const long = Array.from(
      { length: 120 },
      (_, i) => `Paragraph ${i}: ${"lorem ipsum ".repeat(6)}`,
    ).join("\n\n");
    llm.when((r) => r.lastUserText === "write a lot", { text: long });
    tg.userSends({ chat: privateChat(tia), from: tia, text: "write a lot" });
    await tg.waitFor(
      () => tg.messages(tia.id).find((m) => m.text?.includes("Paragraph 119")),
      WAIT,
    );
    const parts = tg.messages(tia.id);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const m of parts) expect(m.text!.length).toBeLessThanOrEqual(4096);
    // Telegram trims each message, so compare without trailing spaces.
    const untrail = (t: string) => t.replace(/ +\n/g, "\n").trim();
    expect(untrail(parts.map((m) => m.text).join("\n\n"))).toBe(untrail(long));
  });

  it("answers in a group when mentioned, replying to the message", async () => {
    const cy = person(1003, "Cy");
    const group = { id: -100200, type: "supergroup" as const, title: "Team" };
    const sent = tg.userSends({ chat: group, from: cy, text: "@lobu_test_bot hello group" });
    expect(sent.delivered).toBe(true);
    const reply = await waitForReply(group.id, "echo: hello group");
    expect(reply.replyToMessageId).toBe(sent.message.message_id);
    // Privacy mode: Telegram does not even send the bot messages that do not address it.
    expect(tg.userSends({ chat: group, from: cy, text: "talking among ourselves" }).delivered).toBe(
      false,
    );
  });

  it("ignores group chatter that reaches it (privacy mode off) unless addressed", async () => {
    tg.bot().privacyMode = false;
    try {
      const dee = person(1004, "Dee");
      const group = { id: -100201, type: "supergroup" as const, title: "Open group" };
      const chatter = tg.userSends({ chat: group, from: dee, text: "nothing for the bot" });
      expect(chatter.delivered).toBe(true);
      await tg.waitFor(
        () =>
          tg.webhookDeliveries.find(
            (d) => d.updateId === chatter.update.update_id && d.status === 200,
          ),
        WAIT,
      );
      expect(await conversationsOf(gw, String(dee.id))).toHaveLength(0);
      // Messages for the bot come with the group's earlier ones (docs/context.md), their own text last.
      llm.when((r) => r.lastUserText.endsWith("\nfirst"), { text: "echo: first" });
      llm.when((r) => r.lastUserText.endsWith("second, as a reply"), {
        text: "echo: second, as a reply",
      });
      // Replying to the bot addresses it.
      tg.userSends({ chat: group, from: dee, text: "@lobu_test_bot first" });
      const first = await waitForReply(group.id, "echo: first");
      tg.userSends({
        chat: group,
        from: dee,
        text: "second, as a reply",
        replyTo: first.messageId,
      });
      await waitForReply(group.id, "echo: second, as a reply");
    } finally {
      tg.bot().privacyMode = true;
    }
  });

  it("answers inside a forum topic", async () => {
    const eve = person(1005, "Eve");
    const forum = { id: -100300, type: "supergroup" as const, title: "Forum", is_forum: true };
    tg.userSends({ chat: forum, from: eve, text: "/help" });
    await tg.waitFor(() => tg.messages(forum.id).length > 0, WAIT);
    const topic = tg.createForumTopic({ chatId: forum.id, name: "Ideas", from: eve });
    tg.userSends({
      chat: forum,
      from: eve,
      text: "@lobu_test_bot idea in a topic",
      messageThreadId: topic,
    });
    const reply = await waitForReply(forum.id, "echo: idea in a topic", topic);
    expect(reply.threadId).toBe(topic);
    expect(tg.chatActions.some((a) => a.chatId === forum.id && a.threadId === topic)).toBe(true);
  });

  it("gives exactly one reply to a redelivered update", async () => {
    const fay = person(1006, "Fay");
    llm.when((r) => r.lastUserText === "only once", slowText("Exactly once.", 4, 100));
    const sent = tg.userSends({ chat: privateChat(fay), from: fay, text: "only once" });
    // Telegram redelivers an update when it did not see a 2xx in time.
    expect((await postWebhook(sent.update)).status).toBe(200);
    await waitForReply(fay.id, "Exactly once.");
    expect(tg.messages(fay.id)).toHaveLength(1);
    const [conv] = await conversationsOf(gw, String(fay.id));
    expect((await historyOf(gw, conv!.id)).filter((h) => h.role === "user")).toHaveLength(1);
  });

  it("saves a document in the sandbox and tells the agent where, keeping the caption", async () => {
    const uma = person(1016, "Uma");
    tg.userSends({
      chat: privateChat(uma),
      from: uma,
      text: "summarize this",
      document: { name: "report.pdf", content: "%PDF-1.4 the report", mimeType: "application/pdf" },
    });
    const history = await waitForHistory(gw, String(uma.id), (h) =>
      h.some((e) => e.role === "assistant"),
    );
    expect(history.find((h) => h.role === "user")?.text).toBe("summarize this");
    const told = llm.requests.find((r) => r.lastUserText.startsWith("summarize this\n\n"));
    expect(told?.lastUserText).toMatch(
      /\/workspace\/inbox\/[\d-]+\/report\.pdf \(name: report\.pdf, type: application\/pdf, size: 19 bytes\)/,
    );
    expect(told?.lastUserText).not.toContain("the report");
  });

  it("ignores bots, its own messages included", async () => {
    const update = {
      update_id: 900_000_001,
      message: {
        message_id: 1,
        from: { id: tg.botId, is_bot: true, first_name: "Lobu", username: "lobu_test_bot" },
        chat: { id: 1007, type: "private", first_name: "Gil" },
        date: Math.floor(Date.now() / 1000),
        text: "a message from the bot itself",
      },
    };
    expect((await postWebhook(update)).status).toBe(200);
    expect(await conversationsOf(gw, String(tg.botId))).toHaveLength(0);
  });
});

describe("Telegram: buttons", () => {
  it("asks a question with an inline keyboard, takes the click and continues", async () => {
    const hal = person(1010, "Hal");
    llm.when(
      (r) => r.lastUserText === "choose for me",
      {
        toolCalls: [
          { name: "ask_user", input: { question: "Which color?", options: ["Red", "Blue"] } },
        ],
      },
      (r) => ({ text: `Going with it. ${r.toolResults[0]?.content ?? ""}` }),
    );
    tg.userSends({ chat: privateChat(hal), from: hal, text: "choose for me" });
    const card = await waitForCard(hal.id);
    expect(card.text).toContain("Which color?");
    const click = tg.clickCallback({
      from: hal,
      chatId: hal.id,
      messageId: card.messageId,
      data: callbackOf(card, "Blue"),
    });
    expect(click.delivered).toBe(true);
    await waitForReply(hal.id, "Going with it. The user answered: Blue");
    expect(tg.callbackAnswers.some((a) => a.callbackQueryId === click.callbackQueryId)).toBe(true);
    const closed = tg.message(hal.id, card.messageId)!;
    expect(closed.replyMarkup).toBeUndefined();
    expect(closed.text).toMatch(/✅ Blue \(answered by hal\)/);
  });

  it("in a group, only the person who asked can answer; others get an alert", async () => {
    const ian = person(1011, "Ian");
    const joe = person(1012, "Joe");
    const group = { id: -100400, type: "supergroup" as const, title: "Approvals" };
    llm.when(
      (r) => r.lastUserText === "run the approved thing",
      { toolCalls: [{ name: "bash", input: { command: "echo approved-run-output" } }] },
      (r) => ({ text: `Result: ${r.toolResults[0]?.content.trim()}` }),
    );
    tg.userSends({ chat: group, from: ian, text: "@lobu_test_bot run the approved thing" });
    const card = await waitForCard(group.id);
    expect(card.text).toContain("echo approved-run-output");
    expect(card.replyMarkup?.inline_keyboard.flat().map((b) => b.text)).toEqual([
      "Approve",
      "Deny",
      "Always allow",
    ]);

    const intruder = tg.clickCallback({
      from: joe,
      chatId: group.id,
      messageId: card.messageId,
      data: callbackOf(card, "Approve"),
    });
    const alert = await tg.waitFor(
      () => tg.callbackAnswers.find((a) => a.callbackQueryId === intruder.callbackQueryId),
      WAIT,
    );
    expect(alert).toMatchObject({
      showAlert: true,
      text: expect.stringMatching(/only the person who asked/),
    });

    tg.clickCallback({
      from: ian,
      chatId: group.id,
      messageId: card.messageId,
      data: callbackOf(card, "Approve"),
    });
    await waitForReply(group.id, "Result: approved-run-output");
    expect(tg.message(group.id, card.messageId)?.text).toMatch(/✅ Approve/);
  });

  it("Deny stops the tool", async () => {
    const kim = person(1013, "Kim");
    llm.when(
      (r) => r.lastUserText === "run the denied thing",
      { toolCalls: [{ name: "bash", input: { command: "echo denied-run-output" } }] },
      (r) => ({
        text: r.toolResults[0]?.isError ? "Understood, I did not run it." : "It ran anyway!",
      }),
    );
    tg.userSends({ chat: privateChat(kim), from: kim, text: "run the denied thing" });
    const card = await waitForCard(kim.id);
    tg.clickCallback({
      from: kim,
      chatId: kim.id,
      messageId: card.messageId,
      data: callbackOf(card, "Deny"),
    });
    await waitForReply(kim.id, "Understood, I did not run it.");
    expect(tg.message(kim.id, card.messageId)?.text).toMatch(/⛔ Deny/);
  });

  it("/stop stops the running reply; with nothing running it says so", async () => {
    const max = person(1015, "Max");
    llm.when(
      (r) => r.lastUserText === "talk for a minute",
      slowText("word ".repeat(300), 300, 200),
    );
    tg.userSends({ chat: privateChat(max), from: max, text: "talk for a minute" });
    await tg.waitFor(() => tg.messages(max.id).find((m) => m.text?.startsWith("word")), {
      ...WAIT,
      description: "the reply streaming",
    });
    tg.userSends({ chat: privateChat(max), from: max, text: "/stop" });
    const stopped = await tg.waitFor(
      () => tg.messages(max.id).find((m) => m.text?.includes("⏹️ Stopped by")),
      { ...WAIT, description: "the reply saying it was stopped" },
    );
    expect(stopped.replyMarkup).toBeUndefined();
    // The model never saw "/stop".
    expect(llm.requests.some((r) => r.lastUserText.includes("/stop"))).toBe(false);

    tg.userSends({ chat: privateChat(max), from: max, text: "/stop" });
    await tg.waitFor(
      () => tg.messages(max.id).find((m) => m.text?.includes("Nothing is running")),
      { ...WAIT, description: "nothing to stop" },
    );
  });

  it("/settings opens the settings as a Mini App in private chats and via a link in groups", async () => {
    const lea = person(1014, "Lea");
    tg.userSends({ chat: privateChat(lea), from: lea, text: "/settings" });
    const privateReply = await tg.waitFor(
      () => tg.messages(lea.id).find((m) => m.replyMarkup),
      WAIT,
    );
    const webApp = privateReply.replyMarkup?.inline_keyboard[0]?.[0];
    expect(webApp?.web_app?.url).toMatch(/\/settings/);

    const group = { id: -100500, type: "supergroup" as const, title: "Settings group" };
    tg.userSends({ chat: group, from: lea, text: "/settings@lobu_test_bot" });
    const groupReply = await tg.waitFor(
      () => tg.messages(group.id).find((m) => m.replyMarkup),
      WAIT,
    );
    expect(groupReply.replyMarkup?.inline_keyboard[0]?.[0]?.url).toBe(
      "https://t.me/lobu_test_bot?start=settings",
    );
    expect(await conversationsOf(gw, String(lea.id))).toHaveLength(0);
  });
});

describe("Telegram: refused requests", () => {
  it("refuses a webhook call with a wrong secret token (401, nothing queued)", async () => {
    const mal = person(1020, "Mal");
    const before = await drainedQueue(gw);
    const update = {
      update_id: 900_000_100,
      message: {
        message_id: 5,
        from: { ...mal, is_bot: false },
        chat: privateChat(mal),
        date: 1,
        text: "let me in",
      },
    };
    expect((await postWebhook(update, "wrong-secret")).status).toBe(401);
    expect((await postWebhook(update, "")).status).toBe(401);
    expect(await conversationsOf(gw, String(mal.id))).toHaveLength(0);
    expect(await queueDepth(gw)).toBe(before);
  });

  it("verifies Mini App initData and refuses forged or stale data", async () => {
    const user = { id: 1030, first_name: "Nia", username: "nia" };
    const verify = (initData: string) =>
      fetch(`${gw.url}/telegram/webapp/verify`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ initData }),
      });
    const before = await drainedQueue(gw);

    const good = await verify(tg.webAppInitData({ user }));
    expect(good.status).toBe(200);
    expect(await good.json()).toMatchObject({
      ok: true,
      user: { id: 1030 },
      userKey: "telegram::1030",
    });
    const viaHeader = await fetch(`${gw.url}/telegram/webapp/verify`, {
      method: "POST",
      headers: { authorization: `tma ${tg.webAppInitData({ user })}` },
    });
    expect(viaHeader.status).toBe(200);

    for (const forged of [
      tg.webAppInitData({ user, botToken: "999:not-this-bot" }),
      tg.webAppInitData({ user, tamper: { user: JSON.stringify({ id: 1, first_name: "Root" }) } }),
      tg.webAppInitData({ user, omitHash: true }),
      tg.webAppInitData({ user, authDate: Math.floor(Date.now() / 1000) - 2 * 3600 }),
      "",
    ]) {
      const res = await verify(forged);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        "invalid_init_data",
      );
    }
    expect(await queueDepth(gw)).toBe(before);
  });
});

describe("Telegram: long polling", () => {
  let pollTg: TelegramEmulator;
  let pollGw: GatewayProcess;

  beforeAll(async () => {
    pollTg = await startTelegramEmulator({
      botToken: "7000000002:AApolling-token",
      botUsername: "lobu_poll_bot",
      rateLimits: false,
    });
    pollGw = await startGatewayProcess({
      toml: '[platforms.telegram]\nstream_interval = "200ms"\n',
      env: {
        ...llmEnv(llm),
        TELEGRAM_BOT_TOKEN: "7000000002:AApolling-token",
        TELEGRAM_API_ROOT: pollTg.url,
        LOBU_PUBLIC_URL: undefined,
      },
    });
  });

  afterAll(async () => {
    await pollGw?.stop();
    await pollTg?.close();
  });

  it("polls getUpdates when no public URL is configured, and stops cleanly", async () => {
    await pollTg.waitFor(() => pollTg.polling, { ...WAIT, description: "a getUpdates long poll" });
    expect(pollTg.webhook).toBeUndefined();
    const oli = person(1040, "Oli");
    pollTg.userSends({ chat: privateChat(oli), from: oli, text: "polling works?" });
    await pollTg.waitFor(
      () => pollTg.messages(oli.id).find((m) => m.text === "echo: polling works?"),
      WAIT,
    );
    // The webhook endpoint does not exist in polling mode.
    expect(
      (await fetch(`${pollGw.url}/telegram/webhook`, { method: "POST", body: "{}" })).status,
    ).toBe(404);
    await pollGw.stop();
    expect(pollGw.child.exitCode).toBe(0);
  });
});
