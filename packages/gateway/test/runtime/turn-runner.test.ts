import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type AgentEvent, newId } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import type { QueuedTurn } from "../../src/domain/turns.ts";
import { Dispatcher } from "../../src/runtime/dispatcher.ts";
import { skillViewsRoot } from "../../src/skills/views.ts";
import { countReactions, type LinkedWorker } from "./linked-worker.ts";
import { type RuntimeKit, startRuntimeKit } from "./runtime-kit.ts";

/**
 * The turn runner and its turn owner (TurnStream) without sandboxes: a linked
 * worker connection stands in for the worker, everything else is the
 * gateway's own (SQLite store, requests, gateway tools, sandbox manager).
 */

let kit: RuntimeKit;
beforeEach(async () => {
  kit = await startRuntimeKit({
    agents: {
      default: { policy: { tools: { notify_team: "ask" } } },
      // No OpenAI key is configured: its turns are refused before they start.
      unkeyed: { provider: "openai" },
    },
  });
});
afterEach(() => kit.close());

const live = () => new AbortController().signal;

/** Start delivery `attempt` of `turn`; resolves with the worker and the turn it was sent. */
async function start(turn: QueuedTurn, attempt: number, lease = live()) {
  const result = kit.runner.run(turn, attempt, lease);
  const worker = await kit.driver.worker(turn.conversationId);
  const sent = await worker.turn();
  return { result, worker, sent };
}

const started = (turn: QueuedTurn, attempt: number): AgentEvent => ({
  type: "turn_started",
  turnId: `${turn.messageId}.${attempt}`,
  messageId: turn.messageId,
});

/** Revocations of this turn's own placeholders (TurnStream.end). */
const revocationsOf = (turnId: string) =>
  kit.revocations.filter((r) => "turnId" in r.which && r.which.turnId === turnId);

/** Everything a turn holds is let go, once. */
async function expectClosedOnce(turn: QueuedTurn, attempt: number) {
  expect(kit.turns.current(turn.conversationId)).toBeNull();
  expect(kit.turns.stream(turn.conversationId)).toBeUndefined();
  expect(revocationsOf(`${turn.messageId}.${attempt}`)).toHaveLength(1);
  expect(kit.surface.ended.get(turn.messageId)).toBe(attempt);
}

describe("a turn's one owner", () => {
  it("relays the worker's events in order to the log and the surface, then the answer", async () => {
    const { turn, claim } = await kit.submit("ada", "hello");
    const { result, worker, sent } = await start(turn, claim.attempts);
    expect(kit.turns.current(turn.conversationId)).toMatchObject({
      turnId: sent.turnId,
      userKey: "api::ada",
    });
    worker.event(sent, { type: "text_delta", text: "Hel" });
    // Usage is the gateway's to report (the relay meters it), not the worker's.
    worker.event(sent, {
      type: "usage",
      provider: "anthropic",
      model: "m",
      inputTokens: 1,
      outputTokens: 1,
    });
    worker.event(sent, { type: "text_delta", text: "lo" });
    worker.answer(sent, "Hello");
    expect(await result).toBe("done");

    const expected: AgentEvent[] = [
      started(turn, 1),
      { type: "text_delta", text: "Hel" },
      { type: "text_delta", text: "lo" },
      { type: "done", text: "Hello" },
    ];
    expect(await kit.logged(turn.messageId)).toEqual(expected);
    expect(kit.surface.events.get(turn.messageId)).toEqual(expected);
    expect(await kit.domain.conversations.getMessage(turn.messageId)).toMatchObject({
      status: "done",
      reply: "Hello",
      attempts: 1,
    });
    await expectClosedOnce(turn, 1);
  });

  it("writes events from concurrent sources (worker, relay, requests, answers) in one order to both", async () => {
    const { turn, claim } = await kit.submit("ada", "busy turn");
    const { result, worker, sent } = await start(turn, claim.attempts);
    const sandboxId = turn.conversationId;
    // The relay writes into the running turn by sandbox id, as the egress wiring does,
    // while the worker's events arrive on its connection.
    const usage = (n: number): AgentEvent => ({
      type: "usage",
      provider: "anthropic",
      model: "m",
      inputTokens: n,
      outputTokens: n,
    });
    for (let i = 0; i < 10; i++) {
      worker.event(sent, { type: "text_delta", text: `w${i}` });
      kit.turns.stream(sandboxId)?.emit(usage(i));
      if (i === 4)
        worker.event(sent, {
          type: "question",
          requestId: "w-q1",
          prompt: "Which one?",
          options: [{ id: "x", label: "X" }],
        });
      if (i % 3 === 0) await Promise.resolve();
    }
    // The question reaches the surface with a gateway-issued id; the person answers it.
    const question = await until(() =>
      kit.surface.events.get(turn.messageId)?.find((e) => e.type === "question"),
    );
    const requestId = (question as { requestId: string }).requestId;
    expect(requestId).not.toBe("w-q1");
    const by = { userKey: "api::ada", label: "api:ada" };
    expect((await kit.domain.requests.answer(requestId, { choice: "x" }, by)).ok).toBe(true);
    // Answers arrive over pub/sub at the turn that asked; only the first counts.
    expect(kit.turns.answer(sandboxId, requestId, { choice: "x", by: "api:ada" })).toBe(true);
    expect(kit.turns.answer(sandboxId, requestId, { choice: "x" })).toBe(false);
    // The worker gets the answer under its own request id.
    expect(await worker.next("answer")).toMatchObject({
      requestId: "w-q1",
      answer: { choice: "x" },
    });
    worker.answer(sent, "done");
    expect(await result).toBe("done");

    const logged = await kit.logged(turn.messageId);
    // One order, the same in the log and on the surface...
    expect(kit.surface.events.get(turn.messageId)).toEqual(logged);
    // ...that keeps each source's own order...
    const texts = logged.flatMap((e) => (e.type === "text_delta" ? [e.text] : []));
    expect(texts).toEqual(Array.from({ length: 10 }, (_, i) => `w${i}`));
    const tokens = logged.flatMap((e) => (e.type === "usage" ? [e.inputTokens] : []));
    expect(tokens).toEqual(Array.from({ length: 10 }, (_, i) => i));
    const types = logged.map((e) => e.type);
    expect(types.indexOf("question")).toBeGreaterThan(texts.indexOf("w4"));
    expect(types.indexOf("request_resolved")).toBeGreaterThan(types.indexOf("question"));
    // ...from the turn's start to its end.
    expect(types[0]).toBe("turn_started");
    expect(logged.at(-1)).toEqual({ type: "done", text: "done" });
    expect(logged.find((e) => e.type === "request_resolved")).toEqual({
      type: "request_resolved",
      requestId,
      outcome: "x",
      by: "api:ada",
    });
  });

  it("a budget refusal is the turn's error, not the worker's account of it", async () => {
    const { turn, claim } = await kit.submit("ada", "expensive");
    const { result, worker, sent } = await start(turn, claim.attempts);
    const refusal = {
      code: "budget_exceeded" as const,
      message: "daily tokens used up. Ask an admin.",
    };
    kit.turns.stream(turn.conversationId)?.fail(refusal);
    kit.turns.stream(turn.conversationId)?.fail({ code: "internal", message: "later" });
    worker.fail(sent, "model_error", "the provider answered 429");
    expect(await result).toBe("done");
    expect((await kit.logged(turn.messageId)).at(-1)).toEqual({ type: "error", ...refusal });
    expect(await kit.domain.conversations.getMessage(turn.messageId)).toMatchObject({
      status: "error",
      error: refusal,
    });
    await expectClosedOnce(turn, 1);
  });

  it("puts the sandbox's pending notice into its next turn, once", async () => {
    const first = await kit.submit("ada", "first");
    const one = await start(first.turn, 1);
    one.worker.answer(one.sent, "ok");
    await one.result;
    // An operator reset: the person is told in the next turn.
    await kit.sandboxes.reset(first.turn.conversationId, { wipe: true });
    const second = await kit.submit("ada", "second");
    const two = await start(second.turn, 1);
    two.worker.answer(two.sent, "ok");
    await two.result;
    const third = await kit.submit("ada", "third");
    const three = await start(third.turn, 1);
    three.worker.answer(three.sent, "ok");
    await three.result;

    const notices = (messageId: string) =>
      kit.surface.events.get(messageId)?.filter((e) => e.type === "notice");
    expect((await kit.logged(second.turn.messageId))[1]).toMatchObject({
      type: "notice",
      level: "warn",
    });
    expect(notices(second.turn.messageId)).toHaveLength(1);
    expect(notices(third.turn.messageId)).toEqual([]);
    // The notice is the gateway's: nothing about it crosses the worker's connection.
    expect(two.worker.received.map((m) => m.t)).toEqual(["turn", "turn"]);
  });

  it("leaves nothing of its finished turns waiting on the sandbox's exit", async () => {
    const first = await kit.submit("ada", "first");
    const one = await start(first.turn, 1);
    one.worker.answer(one.sent, "ok");
    await one.result;
    // An idle sandbox runs for hours: whatever waits on its exit is kept that long.
    const waits = countReactions(one.worker.instance.exited);
    for (const text of ["second", "third", "fourth"]) {
      const next = await kit.submit("ada", text);
      const run = await start(next.turn, 1);
      expect(run.worker).toBe(one.worker);
      run.worker.answer(run.sent, "ok");
      expect(await run.result).toBe("done");
    }
    // Without the shared watch: one waiter, and all its turn held, per turn.
    expect(waits.count).toBe(0);
  });

  it("a turn whose sandbox exits is ended by the exit", async () => {
    const first = await kit.submit("ada", "first");
    const one = await start(first.turn, 1);
    one.worker.answer(one.sent, "ok");
    await one.result;
    const second = await kit.submit("ada", "second");
    const two = await start(second.turn, 1);
    two.worker.exit("crashed");
    expect(await two.result).toBe("retry");
  });

  it("wakes the sandbox of an admitted turn while the rest of its context is written", async () => {
    const { turn, claim } = await kit.submit("ada", "hi");
    const build = kit.domain.contexts.build.bind(kit.domain.contexts);
    // The context is handed over only once the sandbox has started: it must not wait for it.
    const spy = vi.spyOn(kit.domain.contexts, "build").mockImplementation(async (...args) => {
      const context = await build(...args);
      await vi.waitFor(() => expect(kit.driver.started).toHaveLength(1), { timeout: 10_000 });
      return context;
    });
    const result = kit.runner.run(turn, claim.attempts, live());
    const worker = await kit.driver.worker(turn.conversationId);
    worker.answer(await worker.turn(), "hello");
    expect(await result).toBe("done");
    expect(spy).toHaveBeenCalledTimes(1);
    spy.mockRestore();
  });

  it("a context that fails after the turn was admitted fails the turn once its sandbox's wake settled", async () => {
    const { turn, claim } = await kit.submit("ada", "hi");
    // A file where the sandbox's skills folder goes: writing the skill files (after the
    // turn was admitted and the wake began) fails.
    const views = skillViewsRoot(kit.dataDir);
    mkdirSync(views, { recursive: true });
    writeFileSync(join(views, turn.conversationId), "in the way");
    expect(await kit.runner.run(turn, claim.attempts, live())).toBe("done");
    expect((await kit.logged(turn.messageId)).at(-1)).toMatchObject({
      type: "error",
      code: "internal",
    });
    // Woken, not running the turn: it idles out like any other.
    expect(kit.driver.started).toHaveLength(1);
    expect(kit.sandboxes.get(turn.conversationId)).toBeDefined();
    await expectClosedOnce(turn, 1);
  });

  it("a refused context fails the turn without waking a sandbox", async () => {
    const { turn, claim } = await kit.submit("ada", "hi", "unkeyed");
    expect(await kit.runner.run(turn, claim.attempts, live())).toBe("done");
    expect((await kit.logged(turn.messageId)).at(-1)).toMatchObject({
      type: "error",
      code: "no_provider_key",
    });
    expect(kit.driver.started).toEqual([]);
    await expectClosedOnce(turn, 1);
  });
});

describe("every way out ends the turn once", () => {
  it("a worker crash sends the message back, then fails it when its attempts are used up", async () => {
    const { turn, claim } = await kit.submit("ada", "crashy");
    let delivery = claim;
    for (const attempt of [1, 2]) {
      const { result, worker } = await start(turn, delivery.attempts);
      worker.exit("crashed");
      expect(await result).toBe("retry");
      await expectClosedOnce(turn, attempt);
      delivery = await kit.redeliver(delivery);
    }
    const { result, worker } = await start(turn, delivery.attempts);
    worker.exit("oom");
    expect(await result).toBe("done");
    const events = await kit.logged(turn.messageId);
    expect(events.at(-1)).toEqual({
      type: "error",
      code: "agent_failed",
      message: "The agent could not answer: it ran out of memory",
    });
    // Retries carry no final event; each later delivery says it picked the message up again.
    expect(events.filter((e) => e.type === "error" || e.type === "done")).toHaveLength(1);
    const pickedUp = events.filter(
      (e) => e.type === "notice" && /picking the message/.test(e.text),
    );
    expect(pickedUp).toHaveLength(2);
    await expectClosedOnce(turn, 3);
  });

  it("a lost lease cancels the worker's turn and leaves the message to the next claim", async () => {
    const { turn, claim } = await kit.submit("ada", "slow");
    const lease = new AbortController();
    const { result, worker, sent } = await start(turn, claim.attempts, lease.signal);
    lease.abort();
    expect(await result).toBe("retry");
    expect(await worker.next("cancel")).toEqual({
      t: "cancel",
      sandboxId: turn.conversationId,
      turnId: sent.turnId,
    });
    const events = await kit.logged(turn.messageId);
    expect(events.map((e) => e.type)).toEqual(["turn_started"]);
    expect(await kit.domain.conversations.getMessage(turn.messageId)).toMatchObject({
      status: "running",
    });
    await expectClosedOnce(turn, 1);
  });

  it("a crash of the runner itself (the store fails) still ends and closes the turn", async () => {
    const { turn, claim } = await kit.submit("ada", "doomed");
    const { result, worker, sent } = await start(turn, claim.attempts);
    const sandboxId = turn.conversationId;
    const signal = kit.turns.stream(sandboxId)!.signal;
    await kit.storage.store.close();
    worker.answer(sent, "too late");
    await expect(result).rejects.toThrow();
    expect(signal.aborted).toBe(true);
    expect(kit.turns.current(sandboxId)).toBeNull();
    expect(revocationsOf(sent.turnId)).toHaveLength(1);
    expect(kit.surface.ended.get(turn.messageId)).toBe(1);
  });

  it("a turn that ends with an approval open expires it before the final event; the tool is told", async () => {
    const ran: unknown[] = [];
    kit.domain.gatewayTools.register({
      name: "notify_team",
      description: "Post to a team channel.",
      input: z.strictObject({ message: z.string() }),
      execute: async (input) => {
        ran.push(input);
        return "sent";
      },
    });
    const { turn, claim } = await kit.submit("ada", "tell them");
    const { result, worker, sent } = await start(turn, claim.attempts);
    const callId = newId("call");
    worker.send({
      t: "gateway_tool_call",
      sandboxId: turn.conversationId,
      turnId: sent.turnId,
      callId,
      tool: "notify_team",
      input: { message: "hi" },
    });
    await until(() =>
      kit.surface.events.get(turn.messageId)?.find((e) => e.type === "approval_request"),
    );
    worker.answer(sent, "gave up waiting");
    expect(await result).toBe("done");
    expect(await worker.next("gateway_tool_result")).toMatchObject({
      callId,
      ok: false,
      error: { code: "not_approved" },
    });
    expect(ran).toEqual([]);
    const types = (await kit.logged(turn.messageId)).map((e) => e.type);
    expect(types).toEqual(["turn_started", "approval_request", "request_resolved", "done"]);
    expect((await kit.logged(turn.messageId))[2]).toMatchObject({ outcome: "expired" });

    // After the end, a call naming that turn is refused.
    const late = newId("call");
    worker.send({
      t: "gateway_tool_call",
      sandboxId: turn.conversationId,
      turnId: sent.turnId,
      callId: late,
      tool: "notify_team",
      input: { message: "again" },
    });
    expect(await worker.next("gateway_tool_result")).toMatchObject({
      callId: late,
      error: { code: "not_in_turn" },
    });
  });
});

describe("one retry budget", () => {
  it("an eviction (a neighbour crashed the pool) does not use up the victim's attempts", async () => {
    const { turn, claim } = await kit.submit("ada", "victim");
    let delivery = claim;
    // Two charged crashes, then evictions: still retried...
    const ends = ["crashed", "crashed", "evicted", "evicted"];
    for (const reason of ends) {
      const { result, worker } = await start(turn, delivery.attempts);
      worker.exit(reason);
      expect(await result).toBe("retry");
      delivery = await kit.redeliver(delivery);
    }
    expect(await kit.domain.conversations.getMessage(turn.messageId)).toMatchObject({
      attempts: 4,
      unchargedAttempts: 2,
    });
    // ...and the fifth delivery is answered.
    const { result, worker, sent } = await start(turn, delivery.attempts);
    worker.answer(sent, "made it");
    expect(await result).toBe("done");
    expect((await kit.logged(turn.messageId)).at(-1)).toEqual({ type: "done", text: "made it" });
  });

  it("a third charged failure after an eviction is the last", async () => {
    const { turn, claim } = await kit.submit("ada", "unlucky");
    let delivery = claim;
    for (const reason of ["evicted", "crashed", "crashed"]) {
      const { result, worker } = await start(turn, delivery.attempts);
      worker.exit(reason);
      expect(await result).toBe("retry");
      delivery = await kit.redeliver(delivery);
    }
    const { result, worker } = await start(turn, delivery.attempts);
    worker.exit("crashed");
    expect(await result).toBe("done");
    expect((await kit.logged(turn.messageId)).at(-1)).toMatchObject({ code: "agent_failed" });
  });

  it("the dispatcher runs evicted deliveries again, through the queue", async () => {
    const dispatcher = new Dispatcher({
      queue: kit.storage.store.queue,
      owner: "test",
      maxConcurrent: 1,
      run: (turn, attempt, lease) => kit.runner.run(turn, attempt, lease),
      attempts: kit.attempts,
      log: kit.log,
    });
    // Play a worker that is evicted three times, then answers.
    const { messageId } = await kit.domain.inbound.submit({
      origin: { platform: "api", channelId: "runtime", userId: "bo", isDirect: true },
      text: "evict me",
      eventId: "evict-me",
    });
    dispatcher.start();
    try {
      const sandboxId = (await kit.domain.conversations.getMessage(messageId))!.conversationId;
      for (let i = 0; i < 3; i++) {
        const worker: LinkedWorker = await kit.driver.worker(sandboxId);
        await worker.turn();
        worker.exit("evicted");
        await until(async () => kit.driver.started.length > i + 1 || undefined);
      }
      const worker = await kit.driver.worker(sandboxId);
      worker.answer(await worker.turn(), "still here");
      await until(
        async () =>
          (await kit.domain.conversations.getMessage(messageId))?.status === "done" || undefined,
      );
      expect(await kit.domain.conversations.getMessage(messageId)).toMatchObject({
        reply: "still here",
        attempts: 4,
        unchargedAttempts: 3,
      });
    } finally {
      await dispatcher.stop(1000);
    }
  });
});

/** Wait until `probe` gives a value (events cross the linked connection asynchronously). */
async function until<T>(probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    await new Promise((r) => setTimeout(r, 5));
  }
}
