import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { Conversations } from "../../src/conversations/records.ts";
import type { QueuedTurn } from "../../src/domain/turns.ts";
import { MessageAttempts } from "../../src/runtime/attempts.ts";
import { Dispatcher } from "../../src/runtime/dispatcher.ts";
import { createStore } from "../../src/store/index.ts";
import type { QueueClaim } from "../../src/store/port.ts";

const log = createLogger("test", { level: "silent" });

describe("dispatcher", () => {
  it("takes a message whose turn keeps crashing off the queue and reports it, instead of retrying forever", async () => {
    const store = await createStore({
      driver: "sqlite",
      path: join(mkdtempSync(join(tmpdir(), "lobu-disp-")), "db"),
    });
    const attempts: number[] = [];
    let dead: { claim: QueueClaim; reason: string } | undefined;
    let reported!: () => void;
    const done = new Promise<void>((resolve) => {
      reported = resolve;
    });
    const dispatcher = new Dispatcher({
      queue: store.queue,
      owner: "test",
      maxConcurrent: 2,
      attempts: new MessageAttempts(new Conversations(store), {
        maxAttempts: 3,
        maxDeliveries: 10,
      }),
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
    await store.queue.enqueue("sb_1", JSON.stringify({ messageId: "m1" }), { id: "m1" });
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
});
