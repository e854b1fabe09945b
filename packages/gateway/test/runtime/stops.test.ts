import { randomBytes } from "node:crypto";
import { createLogger, isLobuError, sandboxIdOf } from "@lobu/core";
import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/audit/log.ts";
import { Conversations } from "../../src/conversations/records.ts";
import type { Origin } from "../../src/domain/origin.ts";
import type { QueuedTurn } from "../../src/domain/turns.ts";
import { ActiveTurns } from "../../src/runtime/active-turns.ts";
import { type Stopper, TurnStops } from "../../src/runtime/stops.ts";
import { TurnStream } from "../../src/runtime/turn-stream.ts";
import { createStore } from "../../src/store/index.ts";
import { type RuntimeKit, startRuntimeKit } from "./runtime-kit.ts";

/**
 * Stopping turns (runtime/stops.ts) with the real runner, store and pub/sub,
 * a linked worker standing in for the worker: who may stop, what reaches the
 * worker, what the message's record and log say, and what a forged or stray
 * stop does (nothing).
 */

let kit: RuntimeKit;
beforeEach(async () => {
  kit = await startRuntimeKit({ agents: { default: {}, team: { group_routing: "per-channel" } } });
});
afterEach(() => kit.close());

const live = () => new AbortController().signal;
const person = (user: string): Stopper => ({
  userKey: `api::${user}`,
  admin: false,
  label: user,
  actor: `api::${user}`,
});
const ADMIN: Stopper = { admin: true, label: "api:ops", actor: "api:tok_ops" };

async function refusal(p: Promise<unknown>): Promise<{ code: string; status: number }> {
  try {
    await p;
  } catch (err) {
    if (isLobuError(err)) return { code: err.code, status: err.status };
    throw err;
  }
  throw new Error("not refused");
}

describe("stopping a running turn", () => {
  it("cancels the worker's turn; the record, the log and the history say who stopped it", async () => {
    const { turn, claim } = await kit.submit("ada", "long job");
    const result = kit.runner.run(turn, claim.attempts, live());
    const worker = await kit.driver.worker(turn.conversationId);
    const sent = await worker.turn();

    const outcome = await kit.stops.stop({ messageId: turn.messageId }, person("ada"));
    expect(outcome).toMatchObject({ stopped: turn.messageId, dropped: [], kept: 0 });
    const cancel = await worker.next("cancel");
    expect(cancel).toMatchObject({ sandboxId: turn.conversationId, turnId: sent.turnId });
    worker.send({
      t: "turn_end",
      sandboxId: worker.id,
      turnId: sent.turnId,
      status: "cancelled",
      text: "",
    });
    expect(await result).toBe("done");

    const record = await kit.domain.conversations.getMessage(turn.messageId);
    expect(record).toMatchObject({
      status: "stopped",
      error: { code: "turn_stopped", message: "Stopped by ada." },
    });
    expect((await kit.logged(turn.messageId)).at(-1)).toEqual({
      type: "error",
      code: "turn_stopped",
      message: "Stopped by ada.",
    });
    const history = await kit.domain.conversations.history(turn.conversationId, { limit: 10 });
    expect(history.map((h) => h.role)).toEqual(["user", "error"]);
  });

  it("refuses someone else, and their stop reaches no worker", async () => {
    const { turn, claim } = await kit.submit("ada", "my job");
    const result = kit.runner.run(turn, claim.attempts, live());
    const worker = await kit.driver.worker(turn.conversationId);
    const sent = await worker.turn();
    expect(await refusal(kit.stops.stop({ messageId: turn.messageId }, person("eve")))).toEqual({
      code: "forbidden",
      status: 403,
    });
    // A stop notice forged onto the pub/sub channel for another message, and a garbled one.
    await kit.storage.store.pubsub.publish(
      "stops",
      JSON.stringify({ sandboxId: turn.conversationId, messageId: "msg_other", by: "eve" }),
    );
    await kit.storage.store.pubsub.publish("stops", "{not json");
    worker.answer(sent, "finished");
    expect(await result).toBe("done");
    expect(worker.received.some((m) => m.t === "cancel")).toBe(false);
    expect(await kit.domain.conversations.getMessage(turn.messageId)).toMatchObject({
      status: "done",
      reply: "finished",
    });
  });

  it("an admin may stop anyone's turn", async () => {
    const { turn, claim } = await kit.submit("ada", "admin stops this");
    const result = kit.runner.run(turn, claim.attempts, live());
    const worker = await kit.driver.worker(turn.conversationId);
    const sent = await worker.turn();
    await kit.stops.stop({ conversationId: turn.conversationId }, ADMIN);
    await worker.next("cancel");
    // The worker ends the turn its own way; the person's stop is what the turn says.
    worker.fail(sent, "agent_error", "Request was aborted");
    expect(await result).toBe("done");
    expect(await kit.domain.conversations.getMessage(turn.messageId)).toMatchObject({
      status: "stopped",
      error: { message: "Stopped by api:ops." },
    });
  });

  it("a stop before the turn began: the message never runs", async () => {
    const { turn, claim } = await kit.submit("ada", "stopped early");
    // Not running yet: naming the message drops it.
    const outcome = await kit.stops.stop({ messageId: turn.messageId }, person("ada"));
    expect(outcome).toMatchObject({ stopped: null, dropped: [turn.messageId] });
    expect(await kit.runner.run(turn, claim.attempts, live())).toBe("done");
    expect(kit.sandboxes.get(turn.conversationId)).toBeUndefined();
    expect((await kit.logged(turn.messageId)).at(-1)).toMatchObject({ code: "turn_stopped" });
  });

  it("a stop with nothing running says so (409) and changes nothing", async () => {
    const { turn, claim } = await kit.submit("ada", "quick one");
    const result = kit.runner.run(turn, claim.attempts, live());
    const worker = await kit.driver.worker(turn.conversationId);
    worker.answer(await worker.turn(), "done already");
    await result;
    await kit.storage.store.queue.ack(claim);
    expect(
      await refusal(kit.stops.stop({ conversationId: turn.conversationId }, person("ada"))),
    ).toEqual({ code: "turn_not_running", status: 409 });
    expect(await refusal(kit.stops.stop({ messageId: turn.messageId }, person("ada")))).toEqual({
      code: "turn_not_running",
      status: 409,
    });
    expect(await refusal(kit.stops.stop({ messageId: "msg_nope" }, person("ada")))).toMatchObject({
      status: 404,
    });
  });
});

describe("clearing the queue in a shared conversation", () => {
  const origin = (user: string): Origin => ({
    platform: "slack",
    workspace: "T1",
    channelId: "C1",
    userId: user,
    userName: user,
    isDirect: false,
  });
  const member = (user: string): Stopper => ({
    userKey: `slack:T1:${user}`,
    admin: false,
    label: user,
    actor: `slack:T1:${user}`,
  });
  const submit = (user: string, text: string) =>
    kit.domain.inbound.submit({ agentId: "team", origin: origin(user), text, eventId: text });

  it("drops only the stopper's own queued messages; an admin drops all", async () => {
    const first = await submit("ann", "ann first");
    await submit("bob", "bob waits");
    const annLater = await submit("ann", "ann later");
    const conversationId = first.conversationId;

    // Bob may not stop Ann's message, nor clear the queue past it.
    expect(
      await refusal(kit.stops.stop({ messageId: first.messageId }, member("bob"))),
    ).toMatchObject({ status: 403 });
    const own = await kit.stops.stop({ messageId: annLater.messageId }, member("ann"));
    expect(own).toMatchObject({ dropped: [annLater.messageId] });
    const all = await kit.stops.stop({ conversationId }, ADMIN, { clearQueue: true });
    expect(all.dropped).toHaveLength(2);
    const statuses = await Promise.all(
      (await kit.storage.store.queue.pending(conversationId)).map(
        async (m) => (await kit.domain.conversations.getMessage(m.id))?.status,
      ),
    );
    expect(statuses).toEqual(["stopped", "stopped", "stopped"]);
  });
});

describe("across gateways", () => {
  it("a stop taken by one gateway reaches the turn running on another (Redis pub/sub)", async () => {
    const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    const prefix = `lobu-test:${randomBytes(6).toString("hex")}:`;
    const log = createLogger("test", { level: "silent" });
    const one = await createStore({ driver: "redis", url, prefix });
    const two = await createStore({ driver: "redis", url, prefix });
    const gateway = (store: typeof one) => {
      const turns = new ActiveTurns();
      const conversations = new Conversations(store, log);
      const stops = new TurnStops({
        store,
        conversations,
        turns,
        audit: new AuditLog(store, { log }),
        log,
      });
      return { turns, conversations, stops };
    };
    const a = gateway(one);
    const b = gateway(two);
    await a.stops.start();
    await b.stops.start();
    try {
      // A message running on gateway A.
      const origin = { platform: "api", channelId: "x", userId: "ada", isDirect: true };
      const key = {
        agentId: "default",
        platform: "api",
        workspace: "",
        userId: "ada",
        channelId: "x",
      };
      const conversationId = sandboxIdOf(key);
      const turn: QueuedTurn = {
        messageId: "msg_across",
        conversationId,
        key,
        origin,
        text: "long job",
        receivedAt: Date.now(),
      };
      await a.conversations.putMessage({
        id: turn.messageId,
        conversationId,
        agentId: "default",
        origin,
        text: turn.text,
        status: "running",
        createdAt: Date.now(),
      });
      await one.queue.enqueue(conversationId, JSON.stringify(turn), { id: turn.messageId });
      const stream = new TurnStream(turn, `${turn.messageId}.1`, {
        conversations: a.conversations,
        surface: undefined,
        requests: { register: async () => ({}) as never, expire: async () => null },
        turns: a.turns,
        log,
      });
      await a.turns.begin(
        conversationId,
        {
          turnId: stream.turnId,
          messageId: turn.messageId,
          agentId: "default",
          userKey: "api::ada",
          origin,
          model: { provider: "anthropic", id: "m" },
        },
        stream,
      );
      const stopped = new Promise<void>((r) =>
        stream.stopSignal.addEventListener("abort", () => r(), { once: true }),
      );

      // Gateway B, which runs nothing, takes the stop.
      const outcome = await b.stops.stop({ conversationId }, person("ada"));
      expect(outcome.stopped).toBe(turn.messageId);
      await stopped;
      expect(stream.stoppedBy).toBe("ada");
      expect(stream.failure).toEqual({ code: "turn_stopped", message: "Stopped by ada." });
    } finally {
      await a.stops.close();
      await b.stops.close();
      await one.close();
      await two.close();
      await dropKeys(url, prefix);
    }
  });
});

/** Leave the shared Redis as it was. */
async function dropKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}
