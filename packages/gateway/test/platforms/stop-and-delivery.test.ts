import { afterEach, describe, expect, it, vi } from "vitest";
import {
  MessageTooLong,
  platformCalls,
  RetryLater,
  withRetryLater,
} from "../../src/platforms/shared/pacing.ts";
import {
  parseStopAction,
  STOP_REACTIONS,
  stopActionId,
  stopCommand,
} from "../../src/platforms/shared/stop.ts";
import { splitText } from "../../src/platforms/shared/turn-view.ts";
import { stopReaction } from "../../src/platforms/slack/webhook/parse.ts";

/**
 * The shared pieces of stopping from a chat (which messages, buttons and
 * reactions are stops) and of the delivery policy (what is retried, how
 * long, and how a long reply is split).
 */

describe("what is a stop", () => {
  it("takes exactly `stop` and `stop all`, with or without a slash", () => {
    expect(stopCommand("stop")).toEqual({ clearQueue: false });
    expect(stopCommand("  STOP ")).toEqual({ clearQueue: false });
    expect(stopCommand("/stop")).toEqual({ clearQueue: false });
    expect(stopCommand("/stop@lobu_bot")).toEqual({ clearQueue: false });
    expect(stopCommand("stop all")).toEqual({ clearQueue: true });
    expect(stopCommand("/stop all")).toEqual({ clearQueue: true });
    // Messages for the agent.
    for (const text of ["stop the server", "please stop", "stopwatch", "stop all of it", "/stopx"])
      expect(stopCommand(text)).toBeUndefined();
  });

  it("reads its own button ids and nothing else", () => {
    const id = "msg_0123456789abcdefghijklmnop";
    expect(parseStopAction(stopActionId(id, false))).toEqual({ messageId: id, clearQueue: false });
    expect(parseStopAction(stopActionId(id, true))).toEqual({ messageId: id, clearQueue: true });
    // Telegram's callback_data holds at most 64 bytes.
    expect(Buffer.byteLength(stopActionId(id, true))).toBeLessThanOrEqual(64);
    for (const forged of [
      "lobu-stop:",
      "lobu-stop:../../etc",
      "lobu-stop:a:b",
      `lobu-stop:${"x".repeat(61)}`,
      "lobu:rq_1:approve",
    ])
      expect(parseStopAction(forged)).toBeUndefined();
  });

  it("takes a person's stop reaction on a message, not the bot's nor other emoji", () => {
    const base = {
      type: "reaction_added",
      user: "U1",
      reaction: "octagonal_sign",
      item: { type: "message", channel: "C1", ts: "1.1" },
    };
    expect(stopReaction(base, "UBOT", STOP_REACTIONS)).toEqual({ user: "U1", channel: "C1" });
    expect(
      stopReaction({ ...base, reaction: "stop_sign::skin-tone-3" }, "UBOT", STOP_REACTIONS),
    ).toBeDefined();
    expect(stopReaction({ ...base, user: "UBOT" }, "UBOT", STOP_REACTIONS)).toBeUndefined();
    expect(stopReaction({ ...base, reaction: "thumbsup" }, "UBOT", STOP_REACTIONS)).toBeUndefined();
    expect(
      stopReaction({ ...base, item: { type: "file", channel: "C1" } }, "UBOT", STOP_REACTIONS),
    ).toBeUndefined();
  });
});

describe("the delivery policy", () => {
  afterEach(() => vi.useRealTimers());

  it("waits out a long Retry-After instead of giving up", async () => {
    vi.useFakeTimers();
    let calls = 0;
    const delivered = withRetryLater(async () => {
      calls++;
      if (calls === 1) throw new RetryLater(120_000);
      return "ok";
    });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(await delivered).toBe("ok");
    expect(calls).toBe(2);
  });

  it("retries outages with backoff, and gives up at the deadline", async () => {
    vi.useFakeTimers();
    let calls = 0;
    const never = withRetryLater(
      async () => {
        calls++;
        throw new RetryLater(1_000, "503", { outage: true });
      },
      { deadlineMs: 10_000 },
    );
    const settled = never.catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(20_000);
    // 1 s, 2 s, 4 s waited; the next (8 s) would end past the deadline.
    expect(calls).toBe(4);
    expect(await settled).toBeInstanceOf(RetryLater);
  });

  it("throws a message too long at once (the caller splits it)", async () => {
    let calls = 0;
    await expect(
      withRetryLater(async () => {
        calls++;
        throw new MessageTooLong();
      }),
    ).rejects.toBeInstanceOf(MessageTooLong);
    expect(calls).toBe(1);
  });

  it("reads a platform's failures into the policy's kinds", async () => {
    const call = platformCalls((err) => {
      const code = (err as Error).message;
      if (code === "429") return { kind: "rate_limited", retryAfterSec: 30 };
      if (code === "long") return { kind: "too_long" };
      if (code === "503") return { kind: "unavailable" };
      return undefined;
    });
    const failing = (code: string) => () => call(() => Promise.reject(new Error(code)));
    await expect(failing("429")()).rejects.toMatchObject({ afterMs: 30_000, outage: false });
    await expect(failing("long")()).rejects.toBeInstanceOf(MessageTooLong);
    await expect(failing("503")()).rejects.toMatchObject({ outage: true });
    await expect(failing("channel_not_found")()).rejects.toThrow("channel_not_found");
    // One outage is retried inside the call.
    let n = 0;
    expect(
      await call(async () => {
        if (n++ === 0) throw new Error("503");
        return "second time";
      }),
    ).toBe("second time");
  });

  it("splits a long reply at paragraphs, lines, then spaces, losing nothing", () => {
    const text = ["a".repeat(50), "b".repeat(50), `${"c".repeat(30)}\n${"d".repeat(30)}`].join(
      "\n\n",
    );
    const pieces = splitText(text, 60);
    expect(pieces.every((p) => p.length <= 60)).toBe(true);
    expect(pieces.join("").replace(/\s/g, "")).toBe(text.replace(/\s/g, ""));
    expect(splitText("x".repeat(130), 60)).toEqual([
      "x".repeat(60),
      "x".repeat(60),
      "x".repeat(10),
    ]);
  });
});
