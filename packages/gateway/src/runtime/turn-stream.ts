import { type AgentEvent, type RequestAnswer, RequestOutcome } from "@lobu/core";
import type { Logger } from "pino";
import type { Conversations } from "../conversations/records.ts";
import type { ReplySurface } from "../domain/messages.ts";
import { userKeyOf } from "../domain/origin.ts";
import type { RequestEvent } from "../domain/requests.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import type { WorkerConnection } from "../sandbox/driver.ts";
import type { ActiveTurns, RunningTurn } from "./active-turns.ts";
import { AsyncQueue } from "./async-queue.ts";
import type { RequestRegistry } from "./requests.ts";
import type { TurnFailure } from "./turn-outcome.ts";

/** How long close() waits for the surface to deliver a turn's final message. */
const DELIVERY_TIMEOUT_MS = 120_000;
/** Requests are kept at least this long, however short the agent's request timeout. */
const MIN_REQUEST_TTL_MS = 3_600_000;

export interface TurnStreamDeps {
  /** The message's event log. */
  conversations: Pick<Conversations, "appendEvent">;
  /** Where the platform renders the turn, if its adapter runs on this gateway. */
  surface: ReplySurface | undefined;
  /** Requests are recorded here, so an answer given on any gateway finds them. */
  requests: Pick<RequestRegistry, "register" | "expire"> &
    Partial<Pick<RequestRegistry, "reusableApproval" | "get">>;
  /** The turn registry: which turn runs on each sandbox. */
  turns: Pick<ActiveTurns, "begin" | "end">;
  log: Logger;
}

/** What a turn needs to run, known once its context is built and its sandbox is awake. */
export interface TurnStart {
  model: RunningTurn["model"];
  /** The worker's connection: gateway tool calls are taken only from it. */
  connection: WorkerConnection;
  /** How long a request waits for a person (the agent's policy.request_timeout). */
  requestTimeoutMs: number;
  /** The trace context of the turn's worker span (spans made for the sandbox go under it). */
  traceparent?: string;
}

/** Called with the person's answer, or null when the request expired or the turn ended first. */
export type OnAnswer = (answer: RequestAnswer | null) => void;

/**
 * `new` (events only) → `running` (begin: registered, credentials act, tools
 * and answers reach it) → `ended` (the worker is done: everything of the
 * running phase stops) → `closed` (no more events).
 */
type Phase = "new" | "running" | "ended" | "closed";

/**
 * The one owner of a turn: every source writes into the turn through it (the
 * worker's events, the gateway's notices, the LLM relay's usage and budget
 * refusals, gateway tools' approvals, answers), and its lifecycle is the
 * turn's.
 *
 * - **Events** go, in the order they are emitted, to the message's event log
 *   and to the platform surface. emit() is synchronous, so concurrent sources
 *   are ordered by when they write, and the log and the surface see the same
 *   order.
 * - **A failure cause** (fail()): the first reason the gateway stopped the turn
 *   (a budget refusal). If the turn then fails, this is its error, not the
 *   worker's account of it.
 * - **Requests** (ask()/answer()): registered durably, shown, expired after the
 *   agent's request timeout, and all expired when the turn ends.
 * - **Lifecycle**: begin() registers the turn in the turn registry (where
 *   credentials, the egress side and gateway tools find it); end() is called
 *   when the worker is done with the turn, on every way out, and stops all of
 *   that at once: exactly once, however often it is called. close() then ends
 *   the stream to the surface and waits for the log.
 */
export class TurnStream {
  readonly turn: QueuedTurn;
  /** `<messageId>.<attempt>`: every delivery of a message is its own turn. */
  readonly turnId: string;
  /**
   * Other people's words are in this turn's context (a thread's messages by
   * others, a sandbox the channel shares): a planted instruction could be
   * among them, so tools whose effect outlives the turn ask the sender first
   * (`askWhenOthersWrote`, gateway-tools.ts). Set by the runner before the
   * exchange starts.
   */
  othersInContext = false;
  readonly #deps: TurnStreamDeps;
  #phase: Phase = "new";
  #start: TurnStart | undefined;
  #running: RunningTurn | undefined;
  #failure: TurnFailure | undefined;
  /** Log writes, one after another in emit order. */
  #writes: Promise<void> = Promise.resolve();
  readonly #delivery = new AsyncQueue<AgentEvent>();
  readonly #delivered: Promise<void>;
  /** Made when first asked for (few turns call gateway tools): ending a turn aborts it, if any. */
  #abort: AbortController | undefined;
  /** Aborted when a person stops the turn (stop()); the runner then cancels the worker. */
  readonly #stop = new AbortController();
  #stoppedBy: string | undefined;
  readonly #pending = new Map<string, { onAnswer: OnAnswer; timer: NodeJS.Timeout }>();
  #ending: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(turn: QueuedTurn, turnId: string, deps: TurnStreamDeps) {
    this.turn = turn;
    this.turnId = turnId;
    this.#deps = deps;
    const { surface, log } = deps;
    this.#delivered = surface
      ? surface
          .deliver(turn.origin, {
            messageId: turn.messageId,
            events: this.#delivery,
            ...(turn.persona ? { persona: turn.persona } : {}),
          })
          .catch((err) => {
            log.error(
              { err, platform: turn.origin.platform, messageId: turn.messageId },
              "reply delivery failed",
            );
          })
      : Promise.resolve();
  }

  get sandboxId(): string {
    return this.turn.conversationId;
  }

  /** The turn as the registry describes it, while it runs (begin → end). */
  get running(): RunningTurn | null {
    return this.#phase === "running" ? (this.#running ?? null) : null;
  }

  /** The worker's connection, while the turn runs. */
  get connection(): WorkerConnection | undefined {
    return this.#phase === "running" ? this.#start?.connection : undefined;
  }

  /** Aborted when the turn ends. */
  get signal(): AbortSignal {
    if (!this.#abort) {
      this.#abort = new AbortController();
      if (this.ended) this.#abort.abort();
    }
    return this.#abort.signal;
  }

  get ended(): boolean {
    return this.#phase === "ended" || this.#phase === "closed";
  }

  /** Aborted when a person stops the turn (see stop()). */
  get stopSignal(): AbortSignal {
    return this.#stop.signal;
  }

  /** Who stopped the turn, if someone did. */
  get stoppedBy(): string | undefined {
    return this.#stoppedBy;
  }

  /** Why the gateway stopped the turn, if it did (see fail()). */
  get failure(): TurnFailure | undefined {
    return this.#failure;
  }

  /** Put an event into the turn: the event log, then the surface, in emit order. */
  emit(event: AgentEvent): void {
    if (this.#phase === "closed") {
      this.#deps.log.debug(
        { messageId: this.turn.messageId, type: event.type },
        "event after the turn closed dropped",
      );
      return;
    }
    const { conversations, log } = this.#deps;
    const messageId = this.turn.messageId;
    this.#writes = this.#writes
      .then(() => conversations.appendEvent(messageId, event))
      .then(
        () => {},
        (err) => log.error({ err, messageId }, "could not store turn event"),
      );
    this.#delivery.push(event);
  }

  /** The gateway refused something the turn needs: if the turn fails, this is its error. */
  fail(error: TurnFailure): void {
    if (this.#phase === "closed") return;
    this.#failure ??= error;
  }

  /**
   * A person stopped the turn (runtime/stops.ts): it ends with `turn_stopped`,
   * whatever else failed first, and the runner cancels the worker. False when
   * it was stopped already or is over.
   */
  stop(by: string): boolean {
    if (this.#phase === "closed" || this.#stoppedBy !== undefined) return false;
    this.#stoppedBy = by;
    this.#failure = { code: "turn_stopped", message: `Stopped by ${by}.` };
    this.#stop.abort();
    return true;
  }

  /**
   * The turn runs: it is registered as the sandbox's running turn (other
   * turns' leftover credentials are revoked). Nothing happens once it ended.
   */
  async begin(start: TurnStart): Promise<void> {
    if (this.#phase !== "new") return;
    const { turn } = this;
    this.#start = start;
    this.#running = {
      turnId: this.turnId,
      messageId: turn.messageId,
      agentId: turn.key.agentId,
      userKey: userKeyOf(turn.origin),
      origin: turn.origin,
      model: start.model,
      ...(start.traceparent ? { traceparent: start.traceparent } : {}),
    };
    this.#phase = "running";
    await this.#deps.turns.begin(this.sandboxId, this.#running, this);
  }

  /**
   * Ask a person (a question, an approval, a capability request): recorded,
   * shown, and answered through `onAnswer` once. After the request timeout it
   * expires (`onAnswer(null)`); so does every request still open when the turn
   * ends. A request asked after the end is recorded as expired and not shown.
   */
  async ask(asked: RequestEvent, onAnswer: OnAnswer): Promise<void> {
    const { turn } = this;
    const timeoutMs = this.#start?.requestTimeoutMs ?? 0;
    // The same approval still waiting from an earlier attempt (its gateway died): asked
    // through that one, so the person's card resolves this turn.
    const earlier = await this.#earlierApproval(asked);
    const event = earlier ?? asked;
    const requestId = event.requestId;
    if (!earlier)
      await this.#deps.requests.register(
        {
          requestId,
          messageId: turn.messageId,
          sandboxId: this.sandboxId,
          agentId: turn.key.agentId,
          origin: turn.origin,
          event,
          turnId: this.turnId,
        },
        Math.max(MIN_REQUEST_TTL_MS, timeoutMs),
      );
    if (this.#phase !== "running") {
      await this.#expire(requestId);
      onAnswer(null);
      return;
    }
    const timer = setTimeout(() => void this.#timeOut(requestId), timeoutMs);
    timer.unref();
    this.#pending.set(requestId, { onAnswer, timer });
    this.emit(event);
    if (earlier) await this.#answeredMeanwhile(requestId);
  }

  /**
   * An earlier attempt's approval answered between being found pending and being waited on
   * here: its answer went out before anyone listened for it, so it is taken from the record.
   */
  async #answeredMeanwhile(requestId: string): Promise<void> {
    const record = await this.#deps.requests.get?.(requestId).catch(() => null);
    if (record?.status === "answered" && record.answer) this.answer(requestId, record.answer);
  }

  async #earlierApproval(event: RequestEvent): Promise<RequestEvent | undefined> {
    const find = this.#deps.requests.reusableApproval;
    if (event.type !== "approval_request" || !event.inputDigest || !find) return undefined;
    if (this.#phase !== "running") return undefined;
    const earlier = await find
      .call(this.#deps.requests, this.turn.messageId, this.turnId, event.tool, event.inputDigest)
      .catch((err) => {
        this.#deps.log.warn({ err, messageId: this.turn.messageId }, "earlier approval not read");
        return null;
      });
    // Asked already in this turn (two identical calls at once): the second is its own.
    if (!earlier || this.#pending.has(earlier.requestId)) return undefined;
    this.#deps.log.info(
      { messageId: this.turn.messageId, requestId: earlier.requestId, turnId: this.turnId },
      "re-run turn waits on the approval its earlier attempt asked",
    );
    return earlier.event;
  }

  /** An answer to one of this turn's open requests; false when it is not one (any more). */
  answer(requestId: string, answer: RequestAnswer): boolean {
    const pending = this.#pending.get(requestId);
    if (!pending) return false;
    this.#pending.delete(requestId);
    clearTimeout(pending.timer);
    this.emit({
      type: "request_resolved",
      requestId,
      outcome: answer.choice ?? RequestOutcome.enum.answered,
      ...(answer.by ? { by: answer.by } : {}),
    });
    pending.onAnswer(answer);
    return true;
  }

  /**
   * The worker is done with the turn (its turn_end, its exit, the lease lost,
   * a failure before it ran): at once, the turn leaves the registry (its
   * credentials stop acting), gateway tools are aborted and open requests are
   * let go; then the turn's own placeholders are revoked and its requests
   * expire (request_resolved "expired", so every surface closes their cards).
   * Runs once; every call returns the same promise.
   */
  end(): Promise<void> {
    this.#ending ??= this.#end();
    return this.#ending;
  }

  async #end(): Promise<void> {
    // Everything up to the first await runs synchronously in end()'s caller.
    this.#phase = "ended";
    this.#abort?.abort();
    const open = [...this.#pending];
    this.#pending.clear();
    for (const [, { onAnswer, timer }] of open) {
      clearTimeout(timer);
      onAnswer(null);
    }
    // Also when the turn never began: building its context may have issued placeholders.
    await this.#deps.turns.end(this.sandboxId, this.turnId);
    for (const [requestId] of open) await this.#expire(requestId, { announce: true });
  }

  /**
   * No more events: the surface's stream ends and the log is written. With
   * `final` (the turn's done or error event was the last one), wait for the
   * surface to deliver it, for at most the delivery timeout. Ends the turn
   * first if that has not happened. Runs once.
   */
  close(opts: { final: boolean }): Promise<void> {
    this.#closing ??= this.#close(opts.final);
    return this.#closing;
  }

  async #close(final: boolean): Promise<void> {
    await this.end();
    this.#phase = "closed";
    this.#delivery.end();
    await this.#writes;
    if (!final) return;
    await Promise.race([
      this.#delivered,
      new Promise((r) => setTimeout(r, DELIVERY_TIMEOUT_MS).unref()),
    ]);
  }

  /**
   * The request timeout passed: the worker stops waiting at the same moment,
   * so the request is marked expired (a late click is refused) and its cards
   * update.
   */
  async #timeOut(requestId: string): Promise<void> {
    const expired = await this.#expire(requestId, { announce: false });
    const pending = this.#pending.get(requestId);
    // Answered while the expiry was being written: the answer stands.
    if (!pending) return;
    this.#pending.delete(requestId);
    if (expired)
      this.emit({ type: "request_resolved", requestId, outcome: RequestOutcome.enum.expired });
    pending.onAnswer(null);
  }

  /** Mark a request expired; true when this call expired it (it was still open). */
  async #expire(requestId: string, opts: { announce?: boolean } = {}): Promise<boolean> {
    const expired = await this.#deps.requests.expire(requestId).catch((err) => {
      this.#deps.log.warn({ err, requestId }, "could not expire a request");
      return null;
    });
    if (expired && opts.announce)
      this.emit({ type: "request_resolved", requestId, outcome: RequestOutcome.enum.expired });
    return expired !== null;
  }
}
