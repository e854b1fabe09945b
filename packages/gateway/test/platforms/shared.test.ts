import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LobuError } from "@lobu/core";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InboundMessage, SubmitResult } from "../../src/domain/messages.ts";
import type { Origin } from "../../src/domain/origin.ts";
import { type AckPolicy, withinDeadline } from "../../src/platforms/shared/ack.ts";
import { Background } from "../../src/platforms/shared/background.ts";
import { inboundMessage, submitInbound } from "../../src/platforms/shared/inbound.ts";
import { answerClick } from "../../src/platforms/shared/interactivity.ts";
import { renderMessages, sendInputOnce } from "../../src/platforms/shared/live-messages.ts";
import { handleOnce } from "../../src/platforms/shared/once.ts";
import { RetryLater, rateLimitedCalls } from "../../src/platforms/shared/pacing.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { OnceMarkers } from "../../src/store/once.ts";

/**
 * The helpers every platform adapter shares (platforms/shared/): one way to
 * handle a delivery once, to answer within the platform's deadline, to store
 * a message, to answer a button click and to meet a rate limit.
 */

/** A logger that keeps its lines, to check what a helper reported. */
function recordingLog() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino(
    { level: "debug" },
    {
      write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }),
    },
  );
  return { log, lines, warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg) };
}

const origin: Origin = { platform: "chat", channelId: "c1", userId: "u1", isDirect: true };

let dir: string;
let store: Store;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "lobu-platform-shared-"));
  store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
});

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("handleOnce (the dedupe and replay flow)", () => {
  it("handles the first delivery and answers every repeat without handling it", async () => {
    const once = new OnceMarkers(store.kv, "platform:chat");
    const { log } = recordingLog();
    const handled: string[] = [];
    const deliver = () =>
      handleOnce(
        { once, log, marker: { key: "update:1", ttlMs: 60_000 } },
        async () => {
          handled.push("update:1");
          return "handled";
        },
        () => "repeat",
      );
    expect(await deliver()).toBe("handled");
    expect(await deliver()).toBe("repeat");
    expect(handled).toEqual(["update:1"]);
  });

  it("forgets a delivery whose handling failed, so the platform's redelivery is handled", async () => {
    const once = new OnceMarkers(store.kv, "platform:chat");
    const { log } = recordingLog();
    const marker = { key: "update:2", ttlMs: 60_000 };
    await expect(
      handleOnce(
        { once, log, marker },
        async () => {
          throw new Error("the store is down");
        },
        () => "repeat",
      ),
    ).rejects.toThrow("the store is down");
    expect(
      await handleOnce(
        { once, log, marker },
        async () => "handled",
        () => "repeat",
      ),
    ).toBe("handled");
  });

  it("shares its markers between gateways on one store", async () => {
    const { log } = recordingLog();
    const marker = { key: "signature:3", ttlMs: 60_000 };
    const first = new OnceMarkers(store.kv, "platform:chat");
    const second = new OnceMarkers(store.kv, "platform:chat");
    expect(
      await handleOnce(
        { once: first, log, marker },
        async () => 1,
        () => 0,
      ),
    ).toBe(1);
    expect(
      await handleOnce(
        { once: second, log, marker },
        async () => 1,
        () => 0,
      ),
    ).toBe(0);
  });
});

describe("withinDeadline (the ack policy)", () => {
  const policy: AckPolicy = {
    transport: "Chat webhook",
    deadlineMs: 20,
    redelivers: true,
    storeAttempts: 1,
  };

  it("says so when handling outlives the platform's deadline", async () => {
    const { log, warnings } = recordingLog();
    // The handling ends only once the warning was written: no race with the clock.
    const result = await withinDeadline(policy, log, async () => {
      while (warnings().length === 0) await new Promise((r) => setTimeout(r, 5));
      return "late";
    });
    expect(result).toBe("late");
    expect(warnings()).toEqual([
      expect.stringMatching(/^Chat webhook: a delivery is still being handled after/),
    ]);
  });

  it("stays quiet when the handling is done in time, and without a deadline", async () => {
    const { log, lines } = recordingLog();
    expect(await withinDeadline({ ...policy, deadlineMs: 60_000 }, log, async () => 1)).toBe(1);
    const { deadlineMs: _none, ...noDeadline } = policy;
    expect(await withinDeadline(noDeadline, log, async () => 2)).toBe(2);
    expect(lines).toEqual([]);
  });
});

describe("submitInbound (storing a chat message)", () => {
  const message = inboundMessage({
    origin,
    text: "hello",
    files: [],
    eventId: "chat:1",
    agentId: undefined,
  }) as InboundMessage;
  const stored = { messageId: "m1", duplicate: false } as SubmitResult;

  function deps(submit: (m: InboundMessage) => Promise<SubmitResult>, storeAttempts = 1) {
    const { log } = recordingLog();
    const told: string[] = [];
    return {
      told,
      background: new Background(log),
      deps: {
        ctx: {
          submit,
          stop: async () => {
            throw new Error("not a stop");
          },
        },
        policy: { transport: "Chat webhook", redelivers: true, storeAttempts },
        log,
        notify: async (_o: Origin, text: string) => {
          told.push(text);
        },
      },
    };
  }

  it("builds no message from nothing, and carries attachments for the turn to fetch", () => {
    expect(
      inboundMessage({ origin, text: "", files: [], eventId: "e", agentId: undefined }),
    ).toBeUndefined();
    expect(
      inboundMessage({
        origin,
        text: "",
        files: [{ name: "a.txt" }],
        eventId: "e",
        agentId: "helper",
      }),
    ).toMatchObject({ text: "", files: [{ name: "a.txt" }], agentId: "helper" });
  });

  it("explains a message refused for good to the person, and counts it handled", async () => {
    const {
      deps: d,
      told,
      background,
    } = deps(async () => {
      throw new LobuError("message_too_large", "the message is too long", {
        status: 413,
        hint: "Send a shorter one",
      });
    });
    await submitInbound({ ...d, background }, message);
    await background.settle();
    expect(told).toEqual(["⚠️ the message is too long. Send a shorter one"]);
  });

  it("tries storing as often as the policy says, then fails the delivery", async () => {
    let calls = 0;
    const failing = async (): Promise<SubmitResult> => {
      calls++;
      throw new Error("the store is down");
    };
    const once = deps(failing, 1);
    await expect(
      submitInbound({ ...once.deps, background: once.background }, message),
    ).rejects.toThrow("the store is down");
    expect(calls).toBe(1);

    let tries = 0;
    const twice = deps(async () => {
      if (++tries < 2) throw new Error("the store is down");
      return stored;
    }, 2);
    await submitInbound({ ...twice.deps, background: twice.background }, message);
    expect(tries).toBe(2);
  });

  it("stops trying once the adapter stops", async () => {
    let calls = 0;
    const stopping = new AbortController();
    const d = deps(async () => {
      calls++;
      stopping.abort();
      throw new Error("the store is down");
    }, 4);
    await expect(
      submitInbound({ ...d.deps, background: d.background, stopped: stopping.signal }, message),
    ).rejects.toThrow("the store is down");
    expect(calls).toBe(1);
  });
});

describe("answerClick (a button click answers a request)", () => {
  const who = { platform: "chat", userId: "u1", userName: "ada" };

  function replies() {
    const said: string[] = [];
    return {
      said,
      replies: {
        refused: async (reason: string) => void said.push(`refused: ${reason}`),
        accepted: async (label: string) => void said.push(`accepted: ${label}`),
        closeCard: async (line: string) => void said.push(`closed: ${line}`),
      },
    };
  }

  it("tells the clicker why an answer was refused", async () => {
    const { said, replies: r } = replies();
    const ctx = {
      answer: async () => ({ ok: false, reason: "only the person who asked can answer" }),
    };
    await answerClick(
      { ctx, views: { hasOpenCard: () => false } },
      { requestId: "r1", choice: "o1", who },
      r,
    );
    expect(said).toEqual(["refused: only the person who asked can answer"]);
  });

  it("passes the answer on and closes the card itself when no live view will", async () => {
    const answers: unknown[] = [];
    const ctx = {
      answer: async (...args: unknown[]) => {
        answers.push(args);
        return { ok: true };
      },
    };
    const closed = replies();
    await answerClick(
      { ctx, views: { hasOpenCard: () => false } },
      { requestId: "r2", choice: "approve", label: "Approve", who },
      closed.replies,
    );
    expect(answers).toEqual([["r2", { choice: "approve" }, who]]);
    expect(closed.said).toEqual(["accepted: Approve", "closed: ✅ **Approve** (answered by ada)"]);

    const live = replies();
    await answerClick(
      { ctx, views: { hasOpenCard: (id) => id === "r3" } },
      { requestId: "r3", choice: "deny", who },
      live.replies,
    );
    expect(live.said).toEqual(["accepted: deny"]);
  });
});

describe("rateLimitedCalls", () => {
  const call = rateLimitedCalls((err) =>
    (err as { status?: number }).status === 429
      ? { retryAfterSec: 3, message: "slow down" }
      : undefined,
  );

  it("turns the platform's rate limit into RetryLater, and leaves other errors alone", async () => {
    const limited = await call(() => Promise.reject({ status: 429 })).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(RetryLater);
    expect(limited).toMatchObject({ afterMs: 3000, message: "slow down" });
    const other = { status: 500 };
    await expect(call(() => Promise.reject(other))).rejects.toBe(other);
    expect(await call(async () => "ok")).toBe("ok");
  });

  it("waits at least a second when the platform names no time", async () => {
    const bare = rateLimitedCalls(() => ({}));
    await expect(bare(() => Promise.reject(new Error("429")))).rejects.toMatchObject({
      afterMs: 1000,
    });
  });
});

describe("renderMessages (a streamed reply's messages)", () => {
  /** A chat that records what is sent, edited and deleted. */
  function chat() {
    const calls: string[] = [];
    let next = 0;
    const io = {
      send: async (content: string, stop: string | undefined) => {
        calls.push(`send ${content}${stop ? ` +${stop}` : ""}`);
        return next++;
      },
      edit: async (id: number, content: string, stop: string | undefined) => {
        calls.push(`edit ${id} ${content}${stop ? ` +${stop}` : ""}`);
      },
      remove: async (id: number) => {
        calls.push(`delete ${id}`);
      },
    };
    return { calls, io };
  }

  it("sends new messages, edits only changed ones, moves Stop to the last, deletes surplus ones", async () => {
    const { calls, io } = chat();
    const first = await renderMessages(undefined, ["a", "b"], "stop", io);
    expect(first.ids).toEqual([0, 1]);
    const second = await renderMessages(first, ["a", "b2", "c"], "stop", io);
    const last = await renderMessages(second, ["a"], undefined, io);
    expect(calls).toEqual([
      "send a",
      "send b +stop",
      "edit 1 b2",
      "send c +stop",
      "delete 1",
      "delete 2",
    ]);
    expect(last).toEqual({ ids: [0], shown: ["a"] });
    // The handle passed in is not changed: a failed render leaves the last good one.
    expect(second.ids).toEqual([0, 1, 2]);
  });
});

describe("sendInputOnce (an approval's full input before its card)", () => {
  it("sends once per file, does not remember a refusal, and turns a failure into none", async () => {
    const { log, warnings } = recordingLog();
    const sent = new Map<string, "file">();
    let calls = 0;
    const file = async () => {
      calls++;
      return "file" as const;
    };
    expect(await sendInputOnce(sent, "a.txt", log, file)).toBe("file");
    expect(await sendInputOnce(sent, "a.txt", log, file)).toBe("file");
    expect(calls).toBe(1);
    expect(await sendInputOnce(sent, "b.txt", log, async () => "none")).toBe("none");
    expect(await sendInputOnce(sent, "b.txt", log, file)).toBe("file");
    const failed = await sendInputOnce(sent, "c.txt", log, () => Promise.reject(new Error("x")));
    expect(failed).toBe("none");
    expect(warnings()).toEqual(["could not send an approval's full input: only Deny is offered"]);
    const limited = new RetryLater(1000, "slow down");
    await expect(sendInputOnce(sent, "d.txt", log, () => Promise.reject(limited))).rejects.toBe(
      limited,
    );
  });
});
