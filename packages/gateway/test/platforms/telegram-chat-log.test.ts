import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { Hono } from "hono";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Origin } from "../../src/domain/origin.ts";
import { platformRoutes } from "../../src/platforms/shared/routes.ts";
import { TelegramChatLog } from "../../src/platforms/telegram/chat-log.ts";
import type { TgMessage } from "../../src/platforms/telegram/webhook/parse.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { adapterContext } from "../../src/wiring/adapter-context.ts";

/**
 * Telegram's history is the gateway's own log of the group messages the bot
 * received, on the real store: bounded per chat, read back through its zod
 * schema (an unreadable entry is skipped), a thread being the group's (or a
 * topic's) messages plus the reply chain, and nothing of private chats.
 */

const BOT = { id: 999 };
const GROUP = -100500;
let store: Store;
let lines: Record<string, unknown>[];
const log = createLogger("test", {
  level: "warn",
  destination: { write: (line: string) => lines.push(JSON.parse(line)) },
});

/** The tests' clock: just after the messages' dates (1_800_000_000 + id seconds). */
let now = 1_800_000_100_000;

function chatLog(maxMessages = 50) {
  const notUsed = () => {
    throw new Error("not used by the chat log");
  };
  const ctx = adapterContext(
    {
      log,
      publicUrl: { value: "http://127.0.0.1:1" },
      kv: store.kv,
      streams: store.streams,
      inbound: { submit: notUsed, refusal: notUsed },
      agents: { bindChannel: notUsed },
      route: { conversationOf: notUsed },
      stops: { stop: notUsed },
      config: { admin: { users: [] } },
      answer: notUsed,
      settingsLinks: { create: notUsed },
      audit: { record: notUsed, recordRefusal: notUsed },
      secrets: { get: notUsed, set: notUsed, delete: notUsed },
    },
    "telegram",
    platformRoutes(new Hono()),
  );
  return new TelegramChatLog({
    logs: ctx.logs,
    settings: { maxMessages, retentionMs: 86_400_000 },
    bot: BOT,
    log,
    now: () => now,
  });
}

const person = (id: number, first_name: string) => ({ id, is_bot: false, first_name });
const alice = person(1, "Alice");
const bob = person(2, "Bob");

function message(id: number, text: string, extra: Partial<TgMessage> = {}): TgMessage {
  return {
    message_id: id,
    from: alice,
    chat: { id: GROUP, type: "supergroup" },
    date: 1_800_000_000 + id,
    text,
    ...extra,
  };
}

function place(messageRef: number, extra: Partial<Origin> = {}) {
  return {
    conversationId: "sb_test",
    origin: {
      platform: "telegram",
      channelId: String(GROUP),
      userId: String(bob.id),
      userName: "Bob",
      isDirect: false,
      messageRef: String(messageRef),
      ...extra,
    },
  };
}

beforeEach(async () => {
  lines = [];
  store = await createStore({
    driver: "sqlite",
    path: join(mkdtempSync(join(tmpdir(), "lobu-chat-log-")), "db"),
  });
});
afterEach(async () => {
  await store.close();
});

describe("the Telegram chat log", () => {
  it("gives the group's earlier messages, newest kept, never the message itself or later ones", async () => {
    const chat = chatLog();
    for (let i = 1; i <= 6; i++) await chat.record(message(i, `m${i}`));
    const { messages, earlier } = await chat.recent(place(5), { limit: 3 });
    expect(messages.map((m) => m.text)).toEqual(["m2", "m3", "m4"]);
    expect(earlier).toBe(true);
    expect(messages[0]).toMatchObject({ author: "Alice", authorId: "1", at: 1_800_000_002_000 });
  });

  it("is bounded per chat to its newest messages", async () => {
    const chat = chatLog(3);
    for (let i = 1; i <= 6; i++) await chat.record(message(i, `m${i}`));
    const { messages } = await chat.recent(place(7), { limit: 10 });
    expect(messages.map((m) => m.text)).toEqual(["m4", "m5", "m6"]);
  });

  it("follows the reply chain, bringing along the bot's own answer Telegram sent with the reply", async () => {
    const chat = chatLog();
    await chat.record(message(1, "question for the bot"));
    await chat.record(
      message(3, "unrelated, in a topic", { is_topic_message: true, message_thread_id: 77 }),
    );
    await chat.record(
      message(4, "thanks, and what about tax?", {
        from: bob,
        reply_to_message: {
          message_id: 2,
          from: { id: BOT.id, is_bot: true, first_name: "Lobu" },
          date: 1_800_000_002,
          text: "the answer is 42",
        },
      }),
    );
    const { messages } = await chat.recent(place(4), { limit: 10 });
    // The topic's message is another thread; the bot's answer is the assistant's.
    expect(messages.map((m) => m.text)).toEqual(["question for the bot", "the answer is 42"]);
    expect(messages[1]).toMatchObject({ fromAssistant: true });
    const inTopic = await chat.recent(place(9, { threadId: "77" }), { limit: 10 });
    expect(inTopic.messages.map((m) => m.text)).toEqual(["unrelated, in a topic"]);
  });

  it("never shows a message older than the retention, however quiet the chat", async () => {
    const chat = chatLog();
    await chat.record(message(1, "long ago"));
    await chat.record(message(2, "recent"));
    now = 1_800_000_001_000 + 86_400_000 + 500;
    try {
      const { messages } = await chat.recent(place(3), { limit: 10 });
      expect(messages.map((m) => m.text)).toEqual(["recent"]);
    } finally {
      now = 1_800_000_100_000;
    }
  });

  it("after an earlier turn gives only newer messages, but the reply chain whole", async () => {
    const chat = chatLog();
    await chat.record(message(1, "old question"));
    await chat.record(message(2, "old chatter"));
    await chat.record(message(5, "new chatter"));
    await chat.record(
      message(6, "about the old question", { from: bob, reply_to_message: { message_id: 1 } }),
    );
    const { messages } = await chat.recent(place(6), { limit: 10, after: "4" });
    expect(messages.map((m) => m.text)).toEqual(["old question", "new chatter"]);
  });

  it("logs nothing of private chats, and refuses to page one", async () => {
    const chat = chatLog();
    await chat.record(message(1, "private words", { chat: { id: bob.id, type: "private" } }));
    const dm = place(2, { channelId: String(bob.id), isDirect: true });
    expect((await chat.recent(dm, { limit: 10 })).messages).toEqual([]);
    await expect(chat.page(dm, { scope: "channel", limit: 10 })).rejects.toThrow(/private chat/);
    expect(await store.streams.length(`platform:telegram:chat:${bob.id}`)).toBe(0);
  });

  it("pages the group newest page first, each page oldest first", async () => {
    const chat = chatLog();
    for (let i = 1; i <= 5; i++) await chat.record(message(i, `m${i}`));
    const first = await chat.page(place(6), { scope: "channel", limit: 2 });
    expect(first.messages.map((m) => m.text)).toEqual(["m4", "m5"]);
    const second = await chat.page(place(6), { scope: "channel", limit: 2, cursor: first.next! });
    expect(second.messages.map((m) => m.text)).toEqual(["m2", "m3"]);
    const last = await chat.page(place(6), { scope: "channel", limit: 2, cursor: second.next! });
    expect(last.messages.map((m) => m.text)).toEqual(["m1"]);
    expect(last.next).toBeUndefined();
  });

  it("skips an unreadable entry, saying which, and reads on", async () => {
    const chat = chatLog();
    await chat.record(message(1, "before"));
    await store.streams.append(`platform:telegram:chat:${GROUP}`, '{"id":"x"}');
    await chat.record(message(3, "after"));
    const { messages } = await chat.recent(place(4), { limit: 10 });
    expect(messages.map((m) => m.text)).toEqual(["before", "after"]);
    expect(lines).toContainEqual(
      expect.objectContaining({
        record: "Telegram chat log entry",
        msg: expect.stringContaining("unreadable"),
      }),
    );
  });
});
