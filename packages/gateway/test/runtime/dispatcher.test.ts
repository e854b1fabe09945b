import { getEventListeners } from "node:events";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { Conversations } from "../../src/conversations/records.ts";
import type { QueuedTurn } from "../../src/domain/turns.ts";
import { MessageAttempts } from "../../src/runtime/attempts.ts";
import { Dispatcher, type DispatcherOptions } from "../../src/runtime/dispatcher.ts";
import { createStore } from "../../src/store/index.ts";
import type { QueueClaim, Store } from "../../src/store/port.ts";

const log = createLogger("test", { level: "silent" });

function queuedTurn(messageId: string): QueuedTurn {
  const origin = { platform: "api", channelId: "c1", userId: "u1", isDirect: true };
  return {
    messageId,
    conversationId: "sb_1",
    key: { agentId: "default", platform: "api", userId: "u1", channelId: "c1" },
    origin,
    text: "hello",
    receivedAt: Date.now(),
  };
}

/** A fresh SQLite store in a temporary folder. */
function tempStore(): Promise<Store> {
  return createStore({
    driver: "sqlite",
    path: join(mkdtempSync(join(tmpdir(), "lobu-disp-")), "db"),
  });
}

/** A dispatcher of the store's queue (two turns at once, three attempts), with `opts` on top. */
function dispatcherOn(
  store: Store,
  opts: Pick<DispatcherOptions, "run" | "log"> & Partial<DispatcherOptions>,
): Dispatcher {
  return new Dispatcher({
    queue: store.queue,
    owner: "test",
    maxConcurrent: 2,
    attempts: new MessageAttempts(new Conversations(store, log), {
      maxAttempts: 3,
      maxDeliveries: 10,
    }),
    ...opts,
  });
}

describe("dispatcher", () => {
  it("takes a message whose turn keeps crashing off the queue and reports it, instead of retrying forever", async () => {
    const store = await tempStore();
    const attempts: number[] = [];
    let dead: { claim: QueueClaim; reason: string } | undefined;
    let reported!: () => void;
    const done = new Promise<void>((resolve) => {
      reported = resolve;
    });
    const dispatcher = dispatcherOn(store, {
      run: async (_turn: QueuedTurn, attempt: number) => {
        attempts.push(attempt);
        throw new Error("boom");
      },
      onDeadLetter: async (claim, reason) => {
        dead = { claim, reason };
        reported();
      },
      log,
    });
    dispatcher.start();
    await store.queue.enqueue("sb_1", JSON.stringify(queuedTurn("m1")), { id: "m1" });
    await done;
    // The dead letter is acknowledged right after it is reported.
    while ((await store.queue.depth()) > 0) await new Promise((r) => setTimeout(r, 20));
    await dispatcher.stop(1000);
    expect(attempts).toEqual([1, 2, 3]);
    expect(dead?.claim.id).toBe("m1");
    expect(dead?.reason).toBe("boom");
    // Nothing is left to redeliver, and no fourth attempt ran.
    expect(await store.queue.depth()).toBe(0);
    expect(attempts).toHaveLength(3);
    await store.close();
  });

  it("dead-letters a message whose payload is not a QueuedTurn at once, without running it", async () => {
    const store = await tempStore();
    const lines: string[] = [];
    const captured = createLogger("test", { destination: { write: (l) => lines.push(l) } });
    const ran: string[] = [];
    const dead: { id: string; reason: string }[] = [];
    const dispatcher = dispatcherOn(store, {
      run: async (turn: QueuedTurn) => {
        ran.push(turn.messageId);
        return "done";
      },
      onDeadLetter: async (claim, reason) => {
        dead.push({ id: claim.id, reason });
      },
      log: captured,
    });
    // Not JSON, JSON of the wrong shape (an old version without `key`), and one good turn behind them.
    await store.queue.enqueue("sb_1", "{torn", { id: "m-torn" });
    const { key: _key, ...old } = queuedTurn("m-old");
    await store.queue.enqueue("sb_2", JSON.stringify(old), { id: "m-old" });
    await store.queue.enqueue("sb_1", JSON.stringify(queuedTurn("m-good")), { id: "m-good" });
    dispatcher.start();
    while ((await store.queue.depth()) > 0) await new Promise((r) => setTimeout(r, 20));
    await dispatcher.stop(1000);

    expect(ran).toEqual(["m-good"]);
    expect(dead.map((d) => d.id).sort()).toEqual(["m-old", "m-torn"]);
    for (const d of dead) expect(d.reason).toMatch(/queued copy is unreadable/);
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged).toContainEqual(
      expect.objectContaining({
        record: "queued turn",
        key: "queue sb_1 m-torn",
        reason: "not valid JSON",
      }),
    );
    expect(logged).toContainEqual(
      expect.objectContaining({
        record: "queued turn",
        key: "queue sb_2 m-old",
        reason: expect.stringContaining("key"),
      }),
    );
    await store.close();
  });

  it("leaves no listener of its turns on a placement that outlives them (a sandbox running many turns)", async () => {
    const store = await tempStore();
    // The sandbox's own hold keeps the placement (and its signal) while turns come and go.
    const lost = new AbortController();
    const ran: string[] = [];
    let finished!: () => void;
    const allRan = new Promise<void>((resolve) => {
      finished = resolve;
    });
    const dispatcher = dispatcherOn(store, {
      placement: {
        lockPrefix: "sandbox-placement:",
        acquire: async () => ({ epoch: 1, lost: lost.signal }),
        release: async () => {},
      },
      run: async (turn: QueuedTurn, _attempt: number, lease: AbortSignal) => {
        ran.push(turn.messageId);
        expect(lease.aborted).toBe(false);
        if (ran.length === 5) finished();
        return "done";
      },
      log,
    });
    dispatcher.start();
    for (let i = 1; i <= 5; i++)
      await store.queue.enqueue("sb_1", JSON.stringify(queuedTurn(`m${i}`)), { id: `m${i}` });
    await allRan;
    while ((await store.queue.depth()) > 0) await new Promise((r) => setTimeout(r, 20));
    await dispatcher.stop(1000);
    expect(ran).toEqual(["m1", "m2", "m3", "m4", "m5"]);
    expect(getEventListeners(lost.signal, "abort")).toHaveLength(0);
    await store.close();
  });
});
