import type { AgentEvent, RequestAnswer } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { approvalEvent, type RequestEvent } from "../../src/domain/requests.ts";
import type { QueuedTurn } from "../../src/domain/turns.ts";
import { TurnStream } from "../../src/runtime/turn-stream.ts";
import { LinkedWorker } from "./linked-worker.ts";
import { type RuntimeKit, startRuntimeKit } from "./runtime-kit.ts";

/** The turn owner on its own: the real store, requests and turn registry; no worker runs. */

let kit: RuntimeKit;
let turn: QueuedTurn;
beforeEach(async () => {
  kit = await startRuntimeKit();
  ({ turn } = await kit.submit("ada", "hello"));
});
afterEach(() => kit.close());

function streamOf(attempt = 1, opts: { requestTimeoutMs?: number } = {}) {
  const stream = new TurnStream(turn, `${turn.messageId}.${attempt}`, {
    conversations: kit.domain.conversations,
    surface: kit.surface,
    requests: kit.domain.requests,
    turns: kit.turns,
    log: kit.log,
  });
  const begin = () =>
    stream.begin({
      model: { provider: "anthropic", id: "claude-test" },
      connection: new LinkedWorker(turn.conversationId).connection,
      requestTimeoutMs: opts.requestTimeoutMs ?? 60_000,
    });
  return { stream, begin };
}

const question = (requestId: string): RequestEvent => ({
  type: "question",
  requestId,
  prompt: "Which one?",
  options: [{ id: "x", label: "X" }],
});

/** Records every call of a request's onAnswer. */
function answers() {
  const got: (RequestAnswer | null)[] = [];
  return { got, onAnswer: (answer: RequestAnswer | null) => got.push(answer) };
}

describe("TurnStream", () => {
  it("aborts the signal a gateway tool took while the turn ran, when the turn ends", async () => {
    const { stream, begin } = streamOf();
    await begin();
    const taken = stream.signal;
    expect(taken.aborted).toBe(false);
    expect(stream.signal).toBe(taken);
    const ending = stream.end();
    expect(taken.aborted).toBe(true);
    await ending;
    await stream.close({ final: false });
  });

  it("ends once however often and from wherever end() is called: registry, tools, requests, credentials", async () => {
    const { stream, begin } = streamOf();
    await begin();
    expect(kit.turns.stream(turn.conversationId)).toBe(stream);
    const a = answers();
    const b = answers();
    await stream.ask(question("rq_a"), a.onAnswer);
    await stream.ask(question("rq_b"), b.onAnswer);

    const ending = [stream.end(), stream.end()];
    // At once, before anything asynchronous: the turn is gone from the registry.
    expect(kit.turns.current(turn.conversationId)).toBeNull();
    expect(stream.signal.aborted).toBe(true);
    await Promise.all([...ending, stream.end(), stream.close({ final: false })]);
    await stream.close({ final: true });

    expect(a.got).toEqual([null]);
    expect(b.got).toEqual([null]);
    expect(kit.revocations.filter((r) => "turnId" in r.which)).toEqual([
      { sandboxId: turn.conversationId, which: { turnId: stream.turnId } },
    ]);
    const expected: AgentEvent[] = [
      question("rq_a"),
      question("rq_b"),
      { type: "request_resolved", requestId: "rq_a", outcome: "expired" },
      { type: "request_resolved", requestId: "rq_b", outcome: "expired" },
    ];
    expect(await kit.logged(turn.messageId)).toEqual(expected);
    expect(kit.surface.events.get(turn.messageId)).toEqual(expected);
    expect(kit.surface.ended.get(turn.messageId)).toBe(1);
    expect((await kit.domain.requests.get("rq_a"))?.status).toBe("expired");
    // Nothing reaches a closed turn.
    expect(stream.answer("rq_a", { choice: "x" })).toBe(false);
    stream.emit({ type: "text_delta", text: "late" });
    expect(await kit.logged(turn.messageId)).toHaveLength(4);
  });

  it("a request nobody answers expires after the request timeout, and is shown as expired", async () => {
    const { stream, begin } = streamOf(1, { requestTimeoutMs: 20 });
    await begin();
    const a = answers();
    await stream.ask(question("rq_slow"), a.onAnswer);
    while (a.got.length === 0) await new Promise((r) => setTimeout(r, 5));
    expect(a.got).toEqual([null]);
    expect((await kit.domain.requests.get("rq_slow"))?.status).toBe("expired");
    expect(stream.answer("rq_slow", { choice: "x" })).toBe(false);
    await stream.close({ final: false });
    expect((await kit.logged(turn.messageId)).at(-1)).toEqual({
      type: "request_resolved",
      requestId: "rq_slow",
      outcome: "expired",
    });
  });

  it("a request asked after the end is recorded as expired and never shown", async () => {
    const { stream, begin } = streamOf();
    await begin();
    await stream.end();
    const a = answers();
    await stream.ask(question("rq_late"), a.onAnswer);
    expect(a.got).toEqual([null]);
    expect((await kit.domain.requests.get("rq_late"))?.status).toBe("expired");
    await stream.close({ final: false });
    expect(await kit.logged(turn.messageId)).toEqual([]);
  });

  it("keeps the first failure cause", async () => {
    const { stream } = streamOf();
    stream.fail({ code: "budget_exceeded", message: "over budget" });
    stream.fail({ code: "model_error", message: "the provider failed" });
    expect(stream.failure).toEqual({ code: "budget_exceeded", message: "over budget" });
    await stream.close({ final: false });
  });

  it("an earlier turn's end does not end the next turn on the same sandbox", async () => {
    const first = streamOf(1);
    const second = streamOf(2);
    await first.begin();
    await second.begin();
    await first.stream.close({ final: false });
    expect(kit.turns.current(turn.conversationId)?.turnId).toBe(second.stream.turnId);
    expect(kit.turns.stream(turn.conversationId)).toBe(second.stream);
    await second.stream.close({ final: false });
    expect(kit.turns.current(turn.conversationId)).toBeNull();
  });

  it("a turn that never began still revokes what its context issued when it ends", async () => {
    const { stream } = streamOf();
    stream.emit({ type: "turn_started", turnId: stream.turnId, messageId: turn.messageId });
    await stream.close({ final: false });
    expect(kit.revocations).toEqual([
      { sandboxId: turn.conversationId, which: { turnId: stream.turnId } },
    ]);
    // Beginning after the end does nothing.
    await stream.begin({
      model: { provider: "anthropic", id: "m" },
      connection: new LinkedWorker(turn.conversationId).connection,
      requestTimeoutMs: 1000,
    });
    expect(kit.turns.current(turn.conversationId)).toBeNull();
  });

  it("a re-run waits on the approval its earlier attempt left pending, and on nothing else", async () => {
    const ls = (id: string, command = "ls") => approvalEvent(id, "bash", { command });
    // Attempt 1 asks, then its gateway dies: the request stays pending (nobody ends the turn).
    const first = streamOf(1);
    await first.begin();
    await first.stream.ask(ls("rq_first"), answers().onAnswer);
    await first.stream.ask(ls("rq_first_denied", "pwd"), answers().onAnswer);
    await kit.domain.requests.answer(
      "rq_first_denied",
      { choice: "deny" },
      { admin: true, label: "admin" },
    );

    const second = streamOf(2);
    await second.begin();
    const same = answers();
    await second.stream.ask(ls("rq_second"), same.onAnswer);
    // Two identical calls in one turn are asked apart; another input is its own request.
    await second.stream.ask(ls("rq_twice"), answers().onAnswer);
    await second.stream.ask(ls("rq_other", "rm -rf /"), answers().onAnswer);
    // Answered (denied) on the earlier attempt: asked anew, never reused.
    await second.stream.ask(ls("rq_again", "pwd"), answers().onAnswer);
    const asked = (kit.surface.events.get(turn.messageId) ?? [])
      .filter((e) => e.type === "approval_request")
      .map((e) => (e as { requestId: string }).requestId);
    expect(asked).toEqual([
      "rq_first",
      "rq_first_denied",
      "rq_first",
      "rq_twice",
      "rq_other",
      "rq_again",
    ]);
    expect(await kit.domain.requests.get("rq_second")).toBeNull();

    // The person's click on the first card resolves the re-run.
    const answer = { choice: "approve", by: "ada" } as RequestAnswer;
    expect(second.stream.answer("rq_first", answer)).toBe(true);
    expect(same.got).toEqual([answer]);

    // Another message with the same input asks its own.
    const other = (await kit.submit("ada", "again")).turn;
    const third = new TurnStream(other, `${other.messageId}.2`, {
      conversations: kit.domain.conversations,
      surface: kit.surface,
      requests: kit.domain.requests,
      turns: kit.turns,
      log: kit.log,
    });
    await third.begin({
      model: { provider: "anthropic", id: "claude-test" },
      connection: new LinkedWorker(other.conversationId).connection,
      requestTimeoutMs: 60_000,
    });
    await third.ask(ls("rq_elsewhere"), answers().onAnswer);
    expect(await kit.domain.requests.get("rq_elsewhere")).toMatchObject({ status: "pending" });
    for (const s of [first.stream, second.stream, third]) await s.close({ final: false });
  });
});
