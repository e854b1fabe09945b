import {
  type AgentEvent,
  errorMessage,
  isLobuError,
  newId,
  type RequestAnswer,
  RequestOutcome,
  type WorkerToGateway,
} from "@lobu/core";
import type { Logger } from "pino";
import type { TurnContextBuilder } from "../agents/context.ts";
import type { Conversations } from "../conversations/records.ts";
import type { ReplySurface } from "../domain/messages.ts";
import { type Origin, userKeyOf } from "../domain/origin.ts";
import { fromWorker, type RequestEvent } from "../domain/requests.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import type { ExitInfo, SandboxInstance } from "../sandbox/driver.ts";
import { inSpan } from "../telemetry/otel.ts";
import type { ActiveTurns } from "./active-turns.ts";
import { AsyncQueue } from "./async-queue.ts";
import type { GatewayToolHost } from "./gateway-tools.ts";
import type { RequestRegistry } from "./requests.ts";
import type { SandboxManager } from "./sandbox-manager.ts";
import type { TurnEvents } from "./turn-events.ts";
import { classifyTurnEnd, type TurnFailure } from "./turn-outcome.ts";

export type TurnResult = "done" | "retry";

/** Attempts before a message that keeps killing its worker is answered with an error. */
export const MAX_ATTEMPTS = 3;
const MAX_REPLY_CHARS = 200_000;
const DELIVERY_TIMEOUT_MS = 120_000;

export interface TurnRunnerDeps {
  sandboxes: SandboxManager;
  conversations: Conversations;
  contexts: TurnContextBuilder;
  requests: RequestRegistry;
  /** Where the running turn of each sandbox is recorded: credentials act only inside it. */
  turns: Pick<ActiveTurns, "begin" | "end">;
  /** Where replies to each platform go (its adapter), if the platform is running. */
  replySurfaceFor(platform: string): ReplySurface | undefined;
  /** Gateway-side events (usage, a budget refusal) reach the running turn through here. */
  events: TurnEvents;
  /** Adds gateway-side details to a request event (e.g. a prefilled settings link). */
  decorateRequest?(event: RequestEvent, turn: QueuedTurn): Promise<RequestEvent>;
  /** Tools that run in the gateway; offered to each turn and called over its worker's connection. */
  gatewayTools?: GatewayToolHost;
  log: Logger;
}

interface ActiveTurn {
  messageId: string;
  emit(event: AgentEvent): void;
  /** Public request id → the worker's own id. */
  requestIds: Map<string, string>;
  /** How long the worker waits for an answer (the agent's policy.request_timeout). */
  requestTimeoutMs: number;
  /** Timers that expire this turn's unanswered requests. */
  expiryTimers: Set<NodeJS.Timeout>;
  /** Why the gateway stopped the turn (e.g. a budget refusal); replaces the worker's error. */
  failure?: TurnFailure;
}

/**
 * Runs one queued message as a turn on its sandbox: wakes the sandbox, sends
 * the turn, relays every event to the message's event log and to the platform
 * adapter that renders it, and records the outcome. A worker that dies mid-turn
 * makes the message go back to the queue (the worker's journal makes the retry
 * safe).
 */
export class TurnRunner {
  private readonly deps: TurnRunnerDeps;
  private readonly active = new Map<string, ActiveTurn>();

  constructor(deps: TurnRunnerDeps) {
    this.deps = deps;
  }

  /** Forward an answer to a worker on this gateway; false when the sandbox is not here. */
  deliverAnswer(sandboxId: string, requestId: string, answer: RequestAnswer): boolean {
    const turn = this.active.get(sandboxId);
    const instance = this.deps.sandboxes.get(sandboxId);
    const workerRequestId = turn?.requestIds.get(requestId);
    if (!turn || !instance || !workerRequestId) return false;
    instance.connection.send({ t: "answer", sandboxId, requestId: workerRequestId, answer });
    turn.emit({
      type: "request_resolved",
      requestId,
      outcome: answer.choice ?? RequestOutcome.enum.answered,
      by: answer.by,
    });
    return true;
  }

  run(turn: QueuedTurn, attempt: number, lease: AbortSignal): Promise<TurnResult> {
    return inSpan(
      "lobu.turn",
      {
        "lobu.agent": turn.key.agentId,
        "lobu.platform": turn.origin.platform,
        "lobu.sandbox": turn.conversationId,
        "lobu.message": turn.messageId,
        "lobu.attempt": attempt,
      },
      async (span) => {
        const result = await this.runTurn(turn, attempt, lease);
        span.setAttribute("lobu.result", result);
        return result;
      },
    );
  }

  private async runTurn(
    turn: QueuedTurn,
    attempt: number,
    lease: AbortSignal,
  ): Promise<TurnResult> {
    const turnId = `${turn.messageId}.${attempt}`;
    try {
      return await this.runAttempt(turn, attempt, lease, turnId);
    } finally {
      // Every way out (failed context, sandbox that did not start, crash, lease
      // lost, retry): the turn's placeholders stop acting and are revoked.
      await this.deps.turns.end(turn.conversationId, turnId);
    }
  }

  private async runAttempt(
    turn: QueuedTurn,
    attempt: number,
    lease: AbortSignal,
    turnId: string,
  ): Promise<TurnResult> {
    const { conversations, log } = this.deps;
    const chain: { p: Promise<unknown> } = { p: Promise.resolve() };
    const delivery = new AsyncQueue<AgentEvent>();
    const emit = (event: AgentEvent) => {
      chain.p = chain.p
        .then(() => conversations.appendEvent(turn.messageId, event))
        .catch((err) => {
          log.error({ err, messageId: turn.messageId }, "could not store turn event");
        });
      delivery.push(event);
    };
    const adapter = this.deps.replySurfaceFor(turn.origin.platform);
    const delivered = adapter
      ? adapter
          .deliver(turn.origin, { messageId: turn.messageId, events: delivery })
          .catch((err) => {
            log.error(
              { err, platform: turn.origin.platform, messageId: turn.messageId },
              "reply delivery failed",
            );
          })
      : Promise.resolve();

    await conversations.updateMessage(turn.messageId, {
      status: "running",
      startedAt: Date.now(),
      attempts: attempt,
    });
    if (attempt === 1) {
      await conversations.appendHistory(turn.conversationId, {
        role: "user",
        text: turn.text,
        messageId: turn.messageId,
        at: turn.receivedAt,
        user: turn.origin.userName ?? turn.origin.userId,
      });
    }
    emit({ type: "turn_started", turnId, messageId: turn.messageId });
    if (attempt > 1)
      emit({
        type: "notice",
        level: "warn",
        text: "The agent was interrupted; picking the message up again.",
      });

    const finish = async (outcome: { text: string } | { error: TurnFailure }) => {
      if ("text" in outcome) {
        const text = outcome.text.slice(0, MAX_REPLY_CHARS);
        emit({ type: "done", text });
        await conversations.appendHistory(turn.conversationId, {
          role: "assistant",
          text,
          messageId: turn.messageId,
          at: Date.now(),
        });
        await conversations.updateMessage(turn.messageId, {
          status: "done",
          reply: text,
          completedAt: Date.now(),
        });
      } else {
        emit({ type: "error", ...outcome.error });
        await conversations.appendHistory(turn.conversationId, {
          role: "error",
          text: outcome.error.message,
          messageId: turn.messageId,
          at: Date.now(),
        });
        await conversations.updateMessage(turn.messageId, {
          status: "error",
          error: outcome.error,
          completedAt: Date.now(),
        });
      }
      delivery.end();
      await chain.p;
      await Promise.race([
        delivered,
        new Promise((r) => setTimeout(r, DELIVERY_TIMEOUT_MS).unref()),
      ]);
    };
    const retryOrFail = async (reason: string): Promise<TurnResult> => {
      if (attempt < MAX_ATTEMPTS && !lease.aborted) {
        delivery.end();
        await chain.p;
        return "retry";
      }
      await finish({
        error: { code: "agent_failed", message: `The agent could not answer: ${reason}` },
      });
      return "done";
    };

    let context: Awaited<ReturnType<TurnContextBuilder["build"]>>;
    try {
      context = await this.deps.contexts.build(turn, turnId);
      if (this.deps.gatewayTools)
        context = { ...context, gatewayTools: await this.deps.gatewayTools.specsFor(turn) };
    } catch (err) {
      const error: TurnFailure = isLobuError(err)
        ? { code: err.code, message: err.hint ? `${err.message}. ${err.hint}` : err.message }
        : { code: "internal", message: errorMessage(err) };
      if (!isLobuError(err)) log.error({ err }, "building turn context failed");
      await finish({ error });
      return "done";
    }

    let instance: SandboxInstance;
    try {
      const warm = this.deps.sandboxes.get(turn.conversationId);
      instance =
        warm ??
        (await inSpan("lobu.sandbox.wake", { "lobu.sandbox": turn.conversationId }, () =>
          this.deps.sandboxes.ensure(turn.conversationId, turn.key),
        ));
    } catch (err) {
      log.error({ err, sandboxId: turn.conversationId }, "sandbox failed to start");
      return retryOrFail(`its sandbox failed to start (${errorMessage(err)})`);
    }

    const release = this.deps.sandboxes.acquire(turn.conversationId);
    const active: ActiveTurn = {
      messageId: turn.messageId,
      emit,
      requestIds: new Map(),
      requestTimeoutMs: context.requestTimeoutSec * 1000,
      expiryTimers: new Set(),
    };
    this.active.set(turn.conversationId, active);
    const closeEvents = this.deps.events.open(turn.conversationId, {
      emit,
      fail: (error) => {
        active.failure ??= error;
      },
    });
    const toolTurn = { sandboxId: turn.conversationId, turnId };
    this.deps.gatewayTools?.begin({
      ...toolTurn,
      turn,
      connection: instance.connection,
      emit,
      requestTimeoutMs: active.requestTimeoutMs,
    });
    try {
      await this.deps.turns.begin(turn.conversationId, {
        turnId,
        messageId: turn.messageId,
        agentId: turn.key.agentId,
        userKey: userKeyOf(turn.origin),
        origin: turn.origin,
        model: { provider: context.model.provider, id: context.model.id },
      });
      const end = await this.exchange(turn, turnId, instance, context, active, lease);
      // The worker is done with this turn: close its credentials now, not after delivery.
      await this.deps.turns.end(turn.conversationId, turnId);
      await this.deps.gatewayTools?.end(toolTurn.sandboxId, turnId);
      // Requests still unanswered when the attempt ends can never be answered: say so
      // before the final event, so every surface closes their cards.
      await this.expirePending(active);
      if (end.kind === "turn_end") {
        const outcome = classifyTurnEnd(end.msg);
        switch (outcome.kind) {
          case "done":
            await finish({ text: outcome.text });
            return "done";
          case "retry":
            return retryOrFail(outcome.reason);
          case "fail":
            await finish({ error: active.failure ?? outcome.error });
            return "done";
        }
      }
      if (end.kind === "lease_lost") {
        delivery.end();
        await chain.p;
        return "retry";
      }
      const why =
        end.exit.reason === "oom"
          ? "it ran out of memory"
          : end.exit.reason === "disk_full"
            ? "its disk is full"
            : `its worker stopped (${end.exit.reason})`;
      return retryOrFail(why);
    } finally {
      for (const timer of active.expiryTimers) clearTimeout(timer);
      void this.deps.gatewayTools?.end(toolTurn.sandboxId, turnId);
      if (this.active.get(turn.conversationId) === active) this.active.delete(turn.conversationId);
      closeEvents();
      release();
    }
  }

  /**
   * The worker stops waiting after the request timeout ("no approval arrived in
   * time"); at the same moment the gateway marks the request expired, so a late
   * click is refused, and emits request_resolved "expired" so cards update.
   */
  private expireLater(active: ActiveTurn, requestId: string): void {
    const timer = setTimeout(() => {
      active.expiryTimers.delete(timer);
      void this.expireRequest(active, requestId);
    }, active.requestTimeoutMs);
    timer.unref();
    active.expiryTimers.add(timer);
  }

  private async expireRequest(active: ActiveTurn, requestId: string): Promise<void> {
    const expired = await this.deps.requests.expire(requestId).catch((err) => {
      this.deps.log.warn({ err, requestId }, "could not expire a request");
      return null;
    });
    if (expired)
      active.emit({ type: "request_resolved", requestId, outcome: RequestOutcome.enum.expired });
  }

  private async expirePending(active: ActiveTurn): Promise<void> {
    for (const timer of active.expiryTimers) clearTimeout(timer);
    active.expiryTimers.clear();
    for (const requestId of active.requestIds.keys()) await this.expireRequest(active, requestId);
  }

  private exchange(
    turn: QueuedTurn,
    turnId: string,
    instance: SandboxInstance,
    context: Awaited<ReturnType<TurnContextBuilder["build"]>>,
    active: ActiveTurn,
    lease: AbortSignal,
  ): Promise<
    | { kind: "turn_end"; msg: Extract<WorkerToGateway, { t: "turn_end" }> }
    | { kind: "exit"; exit: ExitInfo }
    | { kind: "lease_lost" }
  > {
    const sandboxId = turn.conversationId;
    return new Promise((resolve) => {
      let settled = false;
      const settle = (v: Parameters<typeof resolve>[0]) => {
        if (settled) return;
        settled = true;
        off();
        lease.removeEventListener("abort", onLease);
        resolve(v);
      };
      const onLease = () => {
        instance.connection.send({ t: "cancel", sandboxId, turnId });
        settle({ kind: "lease_lost" });
      };
      lease.addEventListener("abort", onLease, { once: true });
      // Events are handled one after another (registering a request is async), so
      // they reach the log and the adapter in the order the worker sent them, and
      // the turn only ends after the last of them.
      let events = Promise.resolve();
      const off = instance.connection.onMessage((msg) => {
        if (!("sandboxId" in msg) || msg.sandboxId !== sandboxId) return;
        if (msg.t === "event" && msg.turnId === turnId) {
          const event = msg.event;
          events = events
            .then(() => this.onWorkerEvent(turn, active, event))
            .catch((err) =>
              this.deps.log.error({ err, sandboxId }, "could not handle a worker event"),
            );
        } else if (msg.t === "turn_end" && msg.turnId === turnId) {
          void events.then(() => settle({ kind: "turn_end", msg }));
        }
      });
      instance.exited.then((exit) => settle({ kind: "exit", exit }));
      instance.connection.send({
        t: "turn",
        sandboxId,
        turnId,
        messageId: turn.messageId,
        text: turn.text,
        context,
      });
    });
  }

  private async onWorkerEvent(
    turn: QueuedTurn,
    active: ActiveTurn,
    event: AgentEvent,
  ): Promise<void> {
    switch (event.type) {
      case "question":
      case "approval_request":
      case "capability_request": {
        // Requests get a gateway-issued id: a worker cannot reach another sandbox's request.
        const publicId = newId("rq");
        active.requestIds.set(publicId, event.requestId);
        // What an approval shows is derived here from its input, never from the worker's words.
        let decorated: RequestEvent = fromWorker({ ...event, requestId: publicId });
        if (this.deps.decorateRequest) decorated = await this.deps.decorateRequest(decorated, turn);
        await this.deps.requests.register(
          {
            requestId: publicId,
            messageId: turn.messageId,
            sandboxId: turn.conversationId,
            agentId: turn.key.agentId,
            origin: turn.origin,
            event: decorated,
          },
          Math.max(3_600_000, active.requestTimeoutMs),
        );
        active.emit(decorated);
        this.expireLater(active, publicId);
        return;
      }
      case "text_delta":
      case "tool_call":
      case "tool_result":
      case "notice":
        active.emit(event);
        return;
      default:
        // Lifecycle, usage and results are the gateway's to report, not the worker's.
        return;
    }
  }
}

export type { Origin };
