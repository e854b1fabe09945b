import { ErrorCode, type WebAPIRateLimitedError } from "@slack/web-api";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type SlackEmulator, startSlackEmulator } from "../../src/platforms.ts";
import { emulatorClient, platformError } from "./web-client.ts";

/**
 * conversations.history and conversations.replies as the emulator serves them
 * to the official client: pages with opaque cursors (each valid only for the
 * listing it came from), the *:history scopes, and rate limits.
 */

const TOKEN = "xoxb-history-token";
let emu: SlackEmulator;

function client(extra: Parameters<typeof emulatorClient>[2] = {}) {
  return emulatorClient(emu, TOKEN, extra);
}

beforeAll(async () => {
  emu = await startSlackEmulator({ signingSecret: "s", botToken: TOKEN });
});
afterAll(async () => {
  await emu.close();
});
beforeEach(() => {
  emu.reset();
  emu.addChannel({ id: "C1", name: "general" });
  emu.addChannel({ id: "C2", name: "random" });
  emu.addUser({ id: "U1", name: "alice" });
});

async function thread(channel: string, replies: number): Promise<string> {
  const { ts } = await emu.userMessage({ user: "U1", channel, text: "root" }, { deliver: false });
  for (let i = 0; i < replies; i++)
    await emu.userMessage(
      { user: "U1", channel, text: `reply ${i}`, threadTs: ts },
      { deliver: false },
    );
  return ts;
}

describe("history pages", () => {
  it("pages a thread with cursors until has_more is false", async () => {
    const ts = await thread("C1", 4);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 5; i++) {
      const res = await client().conversations.replies({
        channel: "C1",
        ts,
        limit: 2,
        ...(cursor ? { cursor } : {}),
      });
      seen.push(...(res.messages ?? []).map((m) => m.text ?? ""));
      cursor = res.has_more ? res.response_metadata?.next_cursor : undefined;
      if (!cursor) break;
    }
    expect(seen).toEqual(["root", "reply 0", "reply 1", "reply 2", "reply 3"]);
  });

  it("pages a channel newest first", async () => {
    for (const text of ["one", "two", "three"])
      await emu.userMessage({ user: "U1", channel: "C1", text }, { deliver: false });
    const first = await client().conversations.history({ channel: "C1", limit: 2 });
    expect(first.messages?.map((m) => m.text)).toEqual(["three", "two"]);
    expect(first.has_more).toBe(true);
    const next = first.response_metadata?.next_cursor as string;
    const second = await client().conversations.history({ channel: "C1", cursor: next });
    expect(second.messages?.map((m) => m.text)).toEqual(["one"]);
    expect(second.has_more).toBe(false);
  });

  it("refuses a cursor from another channel or thread with invalid_cursor", async () => {
    for (const text of ["a", "b", "c"])
      await emu.userMessage({ user: "U1", channel: "C1", text }, { deliver: false });
    await emu.userMessage({ user: "U1", channel: "C2", text: "x" }, { deliver: false });
    const page = await client().conversations.history({ channel: "C1", limit: 1 });
    const cursor = page.response_metadata?.next_cursor as string;
    const other = await platformError(client().conversations.history({ channel: "C2", cursor }));
    expect(other.data.error).toBe("invalid_cursor");
    const ts = await thread("C1", 3);
    const replies = await client().conversations.replies({ channel: "C1", ts, limit: 1 });
    const threadCursor = replies.response_metadata?.next_cursor as string;
    const fromThread = await platformError(
      client().conversations.history({ channel: "C1", cursor: threadCursor }),
    );
    expect(fromThread.data.error).toBe("invalid_cursor");
  });
});

describe("history access", () => {
  it("needs the channel type's *:history scope", async () => {
    const install = emu.installations[0]!;
    const before = install.scopes;
    install.scopes = before.filter((s) => s !== "channels:history");
    try {
      const err = await platformError(client().conversations.history({ channel: "C1" }));
      expect(err.data.error).toBe("missing_scope");
      expect(err.data).toMatchObject({ needed: "channels:history" });
    } finally {
      install.scopes = before;
    }
  });

  it("refuses a channel the bot is not in", async () => {
    emu.addChannel({ id: "C3", name: "secret", isMember: false });
    const err = await platformError(client().conversations.history({ channel: "C3" }));
    expect(err.data.error).toBe("not_in_channel");
  });

  it("answers 429 with Retry-After when rate limited", async () => {
    emu.forceRateLimit("conversations.replies", { retryAfter: 3 });
    const ts = await thread("C1", 1);
    try {
      await client({ rejectRateLimitedCalls: true }).conversations.replies({ channel: "C1", ts });
      throw new Error("expected a rate limit");
    } catch (err) {
      expect((err as WebAPIRateLimitedError).code).toBe(ErrorCode.RateLimitedError);
      expect((err as WebAPIRateLimitedError).retryAfter).toBe(3);
    }
  });
});
