import { Bot, GrammyError, InlineKeyboard, InputFile } from "grammy";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startTelegramEmulator, type TelegramEmulator } from "../../src/platforms.ts";

const TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const ALICE = { id: 1001, first_name: "Alice", username: "alice" };
const PRIVATE = { id: 1001, type: "private" as const };
const GROUP = { id: -1002003004005, type: "supergroup" as const, title: "Team" };

let emu: TelegramEmulator;
let bot: Bot;

async function grammyError(promise: Promise<unknown>): Promise<GrammyError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof GrammyError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}

beforeAll(async () => {
  emu = await startTelegramEmulator({ botToken: TOKEN, botUsername: "lobu_test_bot" });
  bot = new Bot(TOKEN, { client: { apiRoot: emu.url } });
});
afterAll(() => emu.close());
beforeEach(() => {
  emu.reset();
  // Telegram only knows chats the bot has seen.
  emu.userSends({ chat: PRIVATE, from: ALICE, text: "hi" });
  emu.userSends({ chat: GROUP, from: ALICE, text: "hello all" });
});

describe("Bot API through grammY", () => {
  it("getMe describes the bot", async () => {
    await bot.init();
    expect(bot.botInfo).toMatchObject({
      id: 123456789,
      is_bot: true,
      username: "lobu_test_bot",
      can_read_all_group_messages: false,
    });
  });

  it("answers 401 for a bad token and 404 for an unknown method", async () => {
    const wrong = new Bot("123456789:wrong-secret-000000000000", { client: { apiRoot: emu.url } });
    const err = await grammyError(wrong.api.getMe());
    expect(err.error_code).toBe(401);
    expect(err.description).toBe("Unauthorized");

    const res = await fetch(`${emu.url}/bot${TOKEN}/frobnicate`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ ok: false, error_code: 404, description: "Not Found" });
  });

  it("sends MarkdownV2 with entities at UTF-16 offsets", async () => {
    const sent = await bot.api.sendMessage(
      PRIVATE.id,
      "*Bold* _it_ `x\\_y` [link](https://example.com/a\\)b) 🙂 done\\.",
      { parse_mode: "MarkdownV2" },
    );
    expect(sent.text).toBe("Bold it x_y link 🙂 done.");
    expect(sent.entities).toEqual([
      { type: "bold", offset: 0, length: 4 },
      { type: "italic", offset: 5, length: 2 },
      { type: "code", offset: 8, length: 3 },
      { type: "text_link", offset: 12, length: 4, url: "https://example.com/a)b" },
    ]);
    const [stored] = emu.messages(PRIVATE.id);
    expect(stored).toMatchObject({ parseMode: "MarkdownV2", text: sent.text, fromBot: true });
  });

  it("rejects bad MarkdownV2 and HTML like Telegram", async () => {
    const md = async (text: string) =>
      (await grammyError(bot.api.sendMessage(PRIVATE.id, text, { parse_mode: "MarkdownV2" })))
        .description;
    expect(await md("Done. Next")).toBe(
      "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'",
    );
    expect(await md("a-b")).toContain("Character '-' is reserved");
    expect(await md("*unclosed")).toBe(
      "Bad Request: can't parse entities: Can't find end of Bold entity at byte offset 0",
    );
    expect(await md("é _x")).toBe(
      "Bad Request: can't parse entities: Can't find end of Italic entity at byte offset 3",
    );

    const html = async (text: string) =>
      (await grammyError(bot.api.sendMessage(PRIVATE.id, text, { parse_mode: "HTML" })))
        .description;
    expect(await html("line<br>next")).toBe(
      'Bad Request: can\'t parse entities: Unsupported start tag "br" at byte offset 4',
    );
    expect(await html("<b>open")).toBe(
      "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"",
    );
    expect(await html("<b><i>x</b></i>")).toBe(
      'Bad Request: can\'t parse entities: Unmatched end tag at byte offset 7, expected "</i>", found "</b>"',
    );
    expect(await html("x</b>")).toBe(
      "Bad Request: can't parse entities: Unexpected end tag at byte offset 1",
    );

    const ok = await bot.api.sendMessage(
      PRIVATE.id,
      '<b>bold <i>both</i></b> &lt;3 <a href="https://x.io">x</a>',
      {
        parse_mode: "HTML",
      },
    );
    expect(ok.text).toBe("bold both <3 x");
    expect(ok.entities).toEqual([
      { type: "bold", offset: 0, length: 9 },
      { type: "italic", offset: 5, length: 4 },
      { type: "text_link", offset: 13, length: 1, url: "https://x.io" },
    ]);

    expect((await grammyError(bot.api.sendMessage(PRIVATE.id, "   "))).description).toBe(
      "Bad Request: message text is empty",
    );
    expect((await grammyError(bot.api.sendMessage(PRIVATE.id, "x".repeat(4097)))).description).toBe(
      "Bad Request: message is too long",
    );
    expect((await grammyError(bot.api.sendMessage(424242, "x"))).description).toBe(
      "Bad Request: chat not found",
    );
  });

  it("edits with history and refuses no-op edits", async () => {
    const keyboard = new InlineKeyboard().text("Stop", "stop");
    const sent = await bot.api.sendMessage(PRIVATE.id, "Thinking…", { reply_markup: keyboard });
    await bot.api.editMessageText(PRIVATE.id, sent.message_id, "*Done*", {
      parse_mode: "MarkdownV2",
      reply_markup: keyboard,
    });
    const err = await grammyError(
      bot.api.editMessageText(PRIVATE.id, sent.message_id, "*Done*", {
        parse_mode: "MarkdownV2",
        reply_markup: keyboard,
      }),
    );
    expect(err.description).toBe(
      "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
    );
    // Omitting reply_markup removes the keyboard, so this is a change.
    const edited = await bot.api.editMessageText(PRIVATE.id, sent.message_id, "*Done*", {
      parse_mode: "MarkdownV2",
    });
    expect(edited).not.toBe(true);
    const stored = emu.message(PRIVATE.id, sent.message_id)!;
    expect(stored.text).toBe("Done");
    expect(stored.replyMarkup).toBeUndefined();
    expect(stored.edits.map((e) => e.text)).toEqual(["Thinking…", "Done"]);

    await bot.api.editMessageReplyMarkup(PRIVATE.id, sent.message_id, { reply_markup: keyboard });
    expect(emu.message(PRIVATE.id, sent.message_id)?.replyMarkup).toEqual({
      inline_keyboard: [[{ text: "Stop", callback_data: "stop" }]],
    });
    expect((await grammyError(bot.api.editMessageText(PRIVATE.id, 999, "x"))).description).toBe(
      "Bad Request: message to edit not found",
    );
    expect((await grammyError(bot.api.editMessageText(PRIVATE.id, 1, "x"))).description).toBe(
      "Bad Request: message can't be edited",
    );
  });

  it("validates inline keyboards", async () => {
    const long = await grammyError(
      bot.api.sendMessage(PRIVATE.id, "x", {
        reply_markup: new InlineKeyboard().text("go", "d".repeat(65)),
      }),
    );
    expect(long.description).toBe("Bad Request: BUTTON_DATA_INVALID");
    const groupWebApp = await grammyError(
      bot.api.sendMessage(GROUP.id, "x", {
        reply_markup: new InlineKeyboard().webApp("open", "https://gw.example/app"),
      }),
    );
    expect(groupWebApp.description).toBe("Bad Request: BUTTON_TYPE_INVALID");
    const sent = await bot.api.sendMessage(PRIVATE.id, "x", {
      reply_markup: new InlineKeyboard().webApp("open", "https://gw.example/app"),
    });
    expect(sent.reply_markup?.inline_keyboard[0]?.[0]).toMatchObject({
      web_app: { url: "https://gw.example/app" },
    });
    const textOnly = await grammyError(
      bot.api.sendMessage(PRIVATE.id, "x", {
        reply_markup: { inline_keyboard: [[{ text: "plain" } as never]] },
      }),
    );
    expect(textOnly.description).toContain("Text buttons are unallowed in the inline keyboard");
  });

  it("answers 429 with retry_after, forced or from flood limits", async () => {
    emu.forceRateLimit("sendMessage", { retryAfter: 3 });
    const forced = await grammyError(bot.api.sendMessage(PRIVATE.id, "x"));
    expect(forced.error_code).toBe(429);
    expect(forced.description).toBe("Too Many Requests: retry after 3");
    expect(forced.parameters.retry_after).toBe(3);

    const strict = await startTelegramEmulator({
      botToken: TOKEN,
      rateLimits: { privateChat: { limit: 2, windowMs: 60_000 } },
    });
    try {
      strict.userSends({ chat: PRIVATE, from: ALICE, text: "hi" });
      const api = new Bot(TOKEN, { client: { apiRoot: strict.url } }).api;
      const first = await api.sendMessage(PRIVATE.id, "1");
      await api.editMessageText(PRIVATE.id, first.message_id, "1b");
      const limited = await grammyError(api.editMessageText(PRIVATE.id, first.message_id, "1c"));
      expect(limited.error_code).toBe(429);
      expect(limited.parameters.retry_after).toBeGreaterThan(0);
    } finally {
      await strict.close();
    }
  });

  it("delivers photos, voice notes and videos people send, downloadable with getFile", async () => {
    const { update: photo } = emu.userSends({
      chat: PRIVATE,
      from: ALICE,
      text: "look",
      photo: { content: "jpeg bytes" },
    });
    const { update: voice } = emu.userSends({
      chat: PRIVATE,
      from: ALICE,
      voice: { content: "ogg" },
    });
    const { update: video } = emu.userSends({
      chat: PRIVATE,
      from: ALICE,
      video: { name: "clip.mp4", content: "mp4 bytes" },
    });
    const p = photo.message as {
      caption?: string;
      photo?: { file_id: string; file_size: number }[];
    };
    expect(p.caption).toBe("look");
    expect(p.photo?.at(-1)?.file_size).toBe(10);
    const v = voice.message as { voice?: { file_id: string; mime_type: string } };
    expect(v.voice?.mime_type).toBe("audio/ogg");
    const c = video.message as {
      video?: { file_id: string; file_name: string; mime_type: string };
    };
    expect(c.video).toMatchObject({ file_name: "clip.mp4", mime_type: "video/mp4" });
    for (const [id, body] of [
      [p.photo!.at(-1)!.file_id, "jpeg bytes"],
      [v.voice!.file_id, "ogg"],
      [c.video!.file_id, "mp4 bytes"],
    ] as const) {
      const file = await bot.api.getFile(id);
      const download = await fetch(`${emu.url}/file/bot${TOKEN}/${file.file_path}`);
      expect(await download.text()).toBe(body);
    }
  });

  it("uploads documents as multipart and serves them back", async () => {
    const sent = await bot.api.sendDocument(
      PRIVATE.id,
      new InputFile(Buffer.from("report body"), "report.txt"),
      {
        caption: "Your *report*",
        parse_mode: "MarkdownV2",
      },
    );
    expect(sent.document).toMatchObject({ file_name: "report.txt", file_size: 11 });
    expect(sent.caption).toBe("Your report");
    expect(emu.calls.at(-1)?.files).toEqual([expect.objectContaining({ size: 11 })]);
    const file = await bot.api.getFile(sent.document!.file_id);
    const download = await fetch(`${emu.url}/file/bot${TOKEN}/${file.file_path}`);
    expect(await download.text()).toBe("report body");
    expect(emu.messages(PRIVATE.id)[0]?.document?.data.toString()).toBe("report body");

    const edited = await bot.api.editMessageCaption(PRIVATE.id, sent.message_id, {
      caption: "Final <b>report</b>",
      parse_mode: "HTML",
    });
    expect(edited).toMatchObject({ caption: "Final report", edit_date: expect.any(Number) });
    expect(emu.message(PRIVATE.id, sent.message_id)?.edits.map((e) => e.caption)).toEqual([
      "Your report",
    ]);
    const same = await grammyError(
      bot.api.editMessageCaption(PRIVATE.id, sent.message_id, {
        caption: "Final <b>report</b>",
        parse_mode: "HTML",
      }),
    );
    expect(same.description).toMatch(/message is not modified/);
  });

  it("threads messages in forum topics", async () => {
    const forum = {
      id: -1009998887776,
      type: "supergroup" as const,
      title: "Forum",
      is_forum: true,
    };
    emu.userSends({ chat: forum, from: ALICE, text: "hey @lobu_test_bot" });
    const topic = emu.createForumTopic({ chatId: forum.id, name: "Support", from: ALICE });
    const inTopic = await bot.api.sendMessage(forum.id, "in topic", { message_thread_id: topic });
    expect(inTopic).toMatchObject({ message_thread_id: topic, is_topic_message: true });
    expect(inTopic.reply_to_message?.message_id).toBe(topic);
    expect(emu.messages(forum.id, { threadId: topic }).map((m) => m.text)).toEqual(["in topic"]);
    expect(
      (await grammyError(bot.api.sendMessage(forum.id, "x", { message_thread_id: 4242 })))
        .description,
    ).toBe("Bad Request: message thread not found");
    const created = await bot.api.createForumTopic(forum.id, "Bot topic");
    expect(created.message_thread_id).toBeGreaterThan(topic);
  });

  it("lists a group's administrators, the creator first, the bot when it is one", async () => {
    const group = { id: -1009998887700, type: "supergroup" as const, title: "Admins" };
    emu.userSends({ chat: group, from: ALICE, text: "hi @lobu_test_bot" });
    emu.setChatAdmins(group.id, [ALICE]);
    emu.setBotAdmin(group.id);
    const admins = await bot.api.getChatAdministrators(group.id);
    expect(admins.map((m) => [m.status, m.user.id])).toEqual([
      ["creator", ALICE.id],
      ["administrator", bot.botInfo.id],
    ]);
    expect((await grammyError(bot.api.getChatAdministrators(ALICE.id))).description).toContain(
      "private chat",
    );
  });

  it("records commands, menu buttons, chat actions, reactions and deletes", async () => {
    await bot.api.setMyCommands([{ command: "settings", description: "Open settings" }]);
    expect(emu.commands()).toEqual([{ command: "settings", description: "Open settings" }]);
    expect(
      (await grammyError(bot.api.setMyCommands([{ command: "Bad-Cmd", description: "x" }])))
        .description,
    ).toBe("Bad Request: BOT_COMMAND_INVALID");
    await bot.api.setChatMenuButton({
      chat_id: PRIVATE.id,
      menu_button: {
        type: "web_app",
        text: "Settings",
        web_app: { url: "http://127.0.0.1:1/app" },
      },
    });
    expect(emu.menuButton(PRIVATE.id)).toMatchObject({ type: "web_app", text: "Settings" });

    await bot.api.sendChatAction(PRIVATE.id, "typing");
    expect(emu.chatActions).toMatchObject([{ chatId: PRIVATE.id, action: "typing" }]);
    expect(
      (await grammyError(bot.api.sendChatAction(PRIVATE.id, "dancing" as never))).description,
    ).toBe("Bad Request: wrong parameter action in request");

    await bot.api.setMessageReaction(PRIVATE.id, 1, [{ type: "emoji", emoji: "👀" }]);
    expect(emu.message(PRIVATE.id, 1)?.reactions).toEqual(["👀"]);

    const sent = await bot.api.sendMessage(PRIVATE.id, "bye");
    expect(await bot.api.deleteMessage(PRIVATE.id, sent.message_id)).toBe(true);
    expect(emu.messages(PRIVATE.id)).toHaveLength(0);
    expect(
      (await grammyError(bot.api.deleteMessage(PRIVATE.id, sent.message_id))).description,
    ).toBe("Bad Request: message to delete not found");

    expect(await bot.api.getChat(GROUP.id)).toMatchObject({
      id: GROUP.id,
      type: "supergroup",
      title: "Team",
    });

    emu.blockBot(ALICE.id);
    const blocked = await grammyError(bot.api.sendMessage(PRIVATE.id, "hello?"));
    expect(blocked.error_code).toBe(403);
    expect(blocked.description).toBe("Forbidden: bot was blocked by the user");
    emu.blockBot(ALICE.id, false);
  });

  it("injects failures and accepts form-encoded calls", async () => {
    emu.failNext("sendMessage", "message thread not found");
    expect((await grammyError(bot.api.sendMessage(PRIVATE.id, "x"))).description).toBe(
      "Bad Request: message thread not found",
    );
    const form = await fetch(`${emu.url}/bot${TOKEN}/sendMessage`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        chat_id: String(PRIVATE.id),
        text: "form *x*",
        parse_mode: "markdownv2",
      }),
    });
    expect(await form.json()).toMatchObject({ ok: true, result: { text: "form x" } });
    const waited = await emu.waitForCall("sendMessage", (c) => c.params.text === "form *x*");
    expect(waited.httpStatus).toBe(200);
  });
});
