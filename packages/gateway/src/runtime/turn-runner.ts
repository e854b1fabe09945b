import {
  type AgentEvent,
  errorMessage,
  isLobuError,
  newId,
  SHARED_USER,
  type TurnContext,
  type TurnImage,
} from "@lobu/core";
import type { Logger } from "pino";
import type { TurnContextBuilder } from "../agents/context.ts";
import type { Conversations } from "../conversations/records.ts";
import type { ThreadContext } from "../conversations/thread-context.ts";
import type { ReplySurface } from "../domain/messages.ts";
import { fromWorker, type RequestEvent } from "../domain/requests.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import type { ExitInfo, SandboxInstance, WorkerConnection } from "../sandbox/driver.ts";
import { gatewayMetrics } from "../telemetry/metrics.ts";
import {
  contextOf,
  failSpan,
  inSpan,
  pastSpan,
  SpanKind,
  traceparentOfSpan,
  tracer,
} from "../telemetry/otel.ts";
import { whenFulfilled } from "../util/settle-watch.ts";
import type { ActiveTurns } from "./active-turns.ts";
import type { MessageAttempts } from "./attempts.ts";
import type { FilesIn } from "./files-in.ts";
import type { GatewayToolHost } from "./gateway-tools.ts";
import type { RequestRegistry } from "./requests.ts";
import type { SandboxManager } from "./sandbox-manager.ts";
import type { TurnStops } from "./stops.ts";
import { classifyTurnEnd, type TurnEnd, type TurnFailure } from "./turn-outcome.ts";
import { TurnStream } from "./turn-stream.ts";

export type TurnResult = "done" | "retry";

const MAX_REPLY_CHARS = 200_000;
/**
 * How long a worker has to end a stopped turn (pi aborts the model call and
 * kills a running tool's process group) before its sandbox is stopped.
 */
const STOP_GRACE_MS = 10_000;

export interface TurnRunnerDeps {
  sandboxes: Pick<
    SandboxManager,
    "get" | "ensure" | "acquire" | "takeNotice" | "stop" | "pushToSandbox"
  >;
  conversations: Pick<
    Conversations,
    "appendEvent" | "appendHistory" | "updateMessage" | "getMessage"
  >;
  contexts: Pick<TurnContextBuilder, "build">;
  requests: Pick<RequestRegistry, "register" | "expire">;
  /**
   * The running turn of each sandbox: a turn's stream registers itself here
   * while it runs (credentials, the relay's usage, gateway tools and answers
   * find it there).
   */
  turns: ActiveTurns;
  /** How many times a message is tried (runtime/attempts.ts). */
  attempts: MessageAttempts;
  /** Stops asked for before a turn began (runtime/stops.ts); none when absent. */
  stops?: Pick<TurnStops, "requested">;
  /** Where replies to each platform go (its adapter), if the platform is running. */
  replySurfaceFor(platform: string): ReplySurface | undefined;
  /** Adds gateway-side details to a request event (e.g. a prefilled settings link). */
  decorateRequest?(event: RequestEvent, turn: QueuedTurn): Promise<RequestEvent>;
  /** Tools that run in the gateway; offered to each turn and called over its worker's connection. */
  gatewayTools?: Pick<GatewayToolHost, "specsFor" | "serve">;
  /** The text the worker gets: the message, after its thread's earlier messages (as data). */
  threadContext?: Pick<ThreadContext, "contextFor">;
  /** Attachments into the sandbox (runtime/files-in.ts); without it they are refused. */
  filesIn?: Pick<FilesIn, "receive">;
  /** The gateway's own answer to a command (`link`), given instead of a turn of the agent. */
  commandReply?(turn: QueuedTurn): Promise<string | undefined>;
  log: Logger;
}

/** The message's text with its thread's earlier messages (ThreadContext.contextFor). */
type ThreadText = Awaited<ReturnType<ThreadContext["contextFor"]>>;

/** What the worker is sent for the person's message. */
interface TurnInput {
  text: string;
  images: TurnImage[];
}

/** How the worker's side of an attempt ended. */
type WorkerEnd =
  | { kind: "turn_end"; msg: TurnEnd }
  | { kind: "exit"; exit: ExitInfo }
  | { kind: "lease_lost" };

/** What an attempt comes to, before the retry policy is applied. */
type Verdict =
  | { kind: "answer"; text: string }
  | { kind: "fail"; error: TurnFailure }
  /** Deliver the message again if its attempts allow; `reason` is shown if not. */
  | { kind: "retry"; reason: string; charged: boolean }
  /** The lease is lost: the gateway that claims the message next runs it. */
  | { kind: "abandon" }
  /** A person stopped the turn (TurnStream.stop). */
  | { kind: "stopped"; error: TurnFailure };

/**
 * Runs one queued message as a turn on its sandbox, in named steps: open the
 * turn's stream → prepare its context → wake the sandbox → exchange with the
 * worker → conclude (answer, fail, retry or abandon). Every event goes through
 * the turn's TurnStream, which also ends and closes the turn on every way out.
 * A worker that dies mid-turn makes the message go back to the queue (the
 * worker's journal makes the retry safe), within the message's attempts.
 */
export class TurnRunner {
  private readonly deps: TurnRunnerDeps;

  constructor(deps: TurnRunnerDeps) {
    this.deps = deps;
  }

  run(turn: QueuedTurn, attempt: number, lease: AbortSignal): Promise<TurnResult> {
    const attributes = {
      "lobu.agent": turn.key.agentId,
      "lobu.platform": turn.origin.platform,
      "lobu.sandbox": turn.conversationId,
      "lobu.message": turn.messageId,
      "lobu.attempt": attempt,
    };
    const metric = { "lobu.agent": turn.key.agentId, "lobu.platform": turn.origin.platform };
    const m = gatewayMetrics();
    const claimed = Date.now();
    // The trace the message began in (the inbound span), through its time in the queue.
    const queued = pastSpan(
      "lobu.queue",
      turn.receivedAt,
      attributes,
      contextOf(turn.traceparent),
      SpanKind.CONSUMER,
    );
    if (attempt === 1) m.queueWait.record((claimed - turn.receivedAt) / 1000, metric);
    return inSpan(
      "lobu.turn",
      attributes,
      async (span) => {
        const result = await this.runTurn(turn, attempt, lease);
        span.setAttribute("lobu.result", result);
        m.turns.add(1, { ...metric, "lobu.result": result });
        m.turnDuration.record((Date.now() - claimed) / 1000, { ...metric, "lobu.result": result });
        return result;
      },
      { parent: contextOf(traceparentOfSpan(queued)) },
    );
  }

  private async runTurn(
    turn: QueuedTurn,
    attempt: number,
    lease: AbortSignal,
  ): Promise<TurnResult> {
    if (await this.skipStopped(turn)) return "done";
    // A command (`link`) is answered by the gateway and kept out of the
    // conversation's history: the agent never reads a link code.
    const reply = await this.deps.commandReply?.(turn);
    const stream = await this.open(turn, attempt, reply === undefined);
    let release: (() => void) | undefined;
    try {
      if (reply !== undefined) {
        await stream.end();
        await this.finish(stream, { text: reply }, "error", false);
        return "done";
      }
      // Once the context builder admits the turn (agent, budget, key), the sandbox wakes
      // and the thread's earlier messages are read (a platform call) while the rest of the
      // context (placeholders, packages, skill files) is written. A refused turn does
      // neither. Neither promise rejects: wakeSandbox answers every failure with a
      // verdict, and the thread's error is thrown where its text is needed.
      let wake: Promise<SandboxInstance | Verdict> | undefined;
      let threadRead: Promise<PromiseSettledResult<ThreadText | undefined>> | undefined;
      const admitted = () => {
        wake ??= this.wakeSandbox(turn);
        threadRead ??= Promise.allSettled([this.deps.threadContext?.contextFor(turn)]).then(
          ([read]) => read!,
        );
      };
      const context = await this.prepareContext(stream, admitted);
      if ("kind" in context) {
        await Promise.all([wake, threadRead]);
        return await this.conclude(stream, context, attempt, lease);
      }
      admitted();
      const [woken, read] = await Promise.all([wake!, threadRead!]);
      if ("kind" in woken) return await this.conclude(stream, woken, attempt, lease);
      if (read.status === "rejected") throw read.reason;
      const thread = read.value ?? { text: turn.text, othersWrote: false };
      stream.othersInContext = thread.othersWrote || turn.key.userId === SHARED_USER;
      const text = thread.text;
      release = this.deps.sandboxes.acquire(turn.conversationId);
      const input = await this.receiveFiles(stream, context, text);
      const end = await this.exchange(stream, woken, context, lease, input);
      return await this.conclude(stream, this.verdictOf(end, stream), attempt, lease);
    } finally {
      // Every way out, a crash included: the turn ends, its placeholders are
      // revoked and its stream closes (each once; a no-op after conclude).
      await stream.close({ final: false });
      release?.();
    }
  }

  /**
   * A message stopped before its turn began (dropped from the queue, or
   * stopped while it was being claimed) is not run: its record and event log
   * say so, and the queue lets it go.
   */
  private async skipStopped(turn: QueuedTurn): Promise<boolean> {
    const { conversations } = this.deps;
    // Both read at once: one store round trip before every turn, not two.
    const [record, marker] = await Promise.all([
      conversations.getMessage(turn.messageId),
      this.deps.stops?.requested(turn.messageId),
    ]);
    const by = record?.status === "stopped" ? "" : marker;
    if (record?.status !== "stopped" && !by) return false;
    const error = record?.error ?? {
      code: "turn_stopped",
      message: `Stopped by ${by} before it ran.`,
    };
    if (record?.status !== "stopped")
      await conversations.updateMessage(turn.messageId, {
        status: "stopped",
        error,
        completedAt: Date.now(),
      });
    await conversations.appendEvent(turn.messageId, { type: "error", ...error });
    return true;
  }

  /** The turn's stream, with the message marked running and the turn announced. */
  private async open(turn: QueuedTurn, attempt: number, history = true): Promise<TurnStream> {
    const { conversations, log } = this.deps;
    const stream = new TurnStream(turn, `${turn.messageId}.${attempt}`, {
      conversations,
      surface: this.deps.replySurfaceFor(turn.origin.platform),
      requests: this.deps.requests,
      turns: this.deps.turns,
      log,
    });
    try {
      // Two records, written together (one commit of the store's group).
      await Promise.all([
        conversations.updateMessage(turn.messageId, {
          status: "running",
          startedAt: Date.now(),
          attempts: attempt,
        }),
        attempt === 1 && history
          ? conversations.appendHistory(turn.conversationId, {
              role: "user",
              text: turn.text,
              messageId: turn.messageId,
              at: turn.receivedAt,
              user: turn.origin.userName ?? turn.origin.userId,
            })
          : undefined,
      ]);
    } catch (err) {
      await stream.close({ final: false });
      throw err;
    }
    stream.emit({ type: "turn_started", turnId: stream.turnId, messageId: turn.messageId });
    if (attempt > 1)
      stream.emit({
        type: "notice",
        level: "warn",
        text: "The agent was interrupted; picking the message up again.",
      });
    return stream;
  }

  /** The model, tools and credentials for this turn; a refusal (budget, no key) fails the turn. */
  private async prepareContext(
    stream: TurnStream,
    admitted: () => void,
  ): Promise<TurnContext | { kind: "fail"; error: TurnFailure }> {
    try {
      const context = await this.deps.contexts.build(stream.turn, stream.turnId, { admitted });
      const tools = this.deps.gatewayTools;
      return tools ? { ...context, gatewayTools: await tools.specsFor(stream.turn) } : context;
    } catch (err) {
      if (isLobuError(err)) {
        const message = err.hint ? `${err.message}. ${err.hint}` : err.message;
        return { kind: "fail", error: { code: err.code, message } };
      }
      this.deps.log.error({ err }, "building turn context failed");
      return { kind: "fail", error: { code: "internal", message: errorMessage(err) } };
    }
  }

  /** The running sandbox, started if needed; one that does not start is a charged retry. */
  private async wakeSandbox(turn: QueuedTurn): Promise<SandboxInstance | Verdict> {
    const { sandboxes, log } = this.deps;
    const id = turn.conversationId;
    try {
      const running = sandboxes.get(id);
      if (running) return running;
      const started = Date.now();
      const woken = await inSpan("lobu.sandbox.wake", { "lobu.sandbox": id }, () =>
        sandboxes.ensure(id, turn.key),
      );
      gatewayMetrics().wake.record((Date.now() - started) / 1000, {
        "lobu.agent": turn.key.agentId,
      });
      return woken;
    } catch (err) {
      log.error({ err, sandboxId: id }, "sandbox failed to start");
      const reason = `its sandbox failed to start (${errorMessage(err)})`;
      return { kind: "retry", reason, charged: true };
    }
  }

  /**
   * The message for the worker: its text (with its thread context), and its attachments written into
   * the awake sandbox (named in the text, pictures as images). Files that are
   * refused are told to the person in the thread; the message goes on.
   */
  private async receiveFiles(
    stream: TurnStream,
    context: TurnContext,
    text: string,
  ): Promise<TurnInput> {
    const { turn } = stream;
    // A sandbox that does not mount its host folder (a pod) gets the skill files and attachments pushed in.
    if (!turn.files?.length) {
      await this.pushIn(stream, []);
      return { text, images: [] };
    }
    let received: Awaited<ReturnType<FilesIn["receive"]>>;
    try {
      if (!this.deps.filesIn) throw new Error("files are not taken in on this gateway");
      received = await this.deps.filesIn.receive(turn, { images: context.model.images });
    } catch (err) {
      this.deps.log.error({ err, sandboxId: stream.sandboxId }, "attachments could not be saved");
      const refusal = "the attached files could not be saved into the sandbox";
      received = { note: `[${refusal}]`, images: [], refusals: [refusal] };
    }
    await this.pushIn(stream, received.paths ?? []);
    if (received.refusals.length)
      stream.emit({
        type: "notice",
        level: "warn",
        text: `Some attachments were not passed to the agent:\n${received.refusals.map((r) => `• ${r}`).join("\n")}`,
      });
    return { text: [text, received.note].filter(Boolean).join("\n\n"), images: received.images };
  }

  private async pushIn(stream: TurnStream, paths: string[]): Promise<void> {
    try {
      await this.deps.sandboxes.pushToSandbox(stream.sandboxId, { paths, skills: true });
    } catch (err) {
      this.deps.log.error(
        { err, sandboxId: stream.sandboxId },
        "files not pushed into the sandbox",
      );
      stream.emit({
        type: "notice",
        level: "warn",
        text: "The skills' files or the attachments could not be copied into the sandbox.",
      });
    }
  }

  /**
   * Begin the turn, send it to the worker and relay its events until it ends,
   * its sandbox stops, or the lease is lost. Events are handled one after
   * another (registering a request is async), so they reach the log and the
   * surface in the order the worker sent them, and the exchange ends only
   * after the last of them.
   */
  private async exchange(
    stream: TurnStream,
    instance: SandboxInstance,
    context: TurnContext,
    lease: AbortSignal,
    input: TurnInput,
  ): Promise<WorkerEnd> {
    const { sandboxId, turnId } = stream;
    // The worker's side of the turn, as the gateway sees it: what the worker,
    // the relay, the egress proxy and gateway tools do for the turn hangs under it.
    const span = tracer.startSpan("lobu.worker", {
      kind: SpanKind.CLIENT,
      attributes: { "lobu.sandbox": sandboxId, "lobu.turn": turnId },
    });
    try {
      const end = await this.exchangeIn(stream, instance, context, lease, input, span);
      span.setAttribute("lobu.worker.end", end.kind === "turn_end" ? end.msg.status : end.kind);
      if (end.kind === "turn_end" && end.msg.error)
        span.setAttribute("error.type", end.msg.error.code);
      return end;
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  private async exchangeIn(
    stream: TurnStream,
    instance: SandboxInstance,
    context: TurnContext,
    lease: AbortSignal,
    input: TurnInput,
    span: ReturnType<typeof tracer.startSpan>,
  ): Promise<WorkerEnd> {
    const { connection } = instance;
    const { sandboxId, turnId, turn } = stream;
    const traceparent = traceparentOfSpan(span);
    this.deps.gatewayTools?.serve(connection, this.deps.turns);
    // A stop that came while the turn was being prepared: read once the turn is
    // registered (begin does that before its first await), while begin revokes
    // earlier turns' leftovers. A later stop finds the registered turn.
    const [, stoppedBy] = await Promise.all([
      stream.begin({
        model: { provider: context.model.provider, id: context.model.id },
        connection,
        requestTimeoutMs: context.requestTimeoutSec * 1000,
        ...(traceparent ? { traceparent } : {}),
      }),
      this.deps.stops?.requested(turn.messageId),
    ]);
    if (stoppedBy) stream.stop(stoppedBy);
    return new Promise((resolve) => {
      let settled = false;
      let events = Promise.resolve();
      let grace: NodeJS.Timeout | undefined;
      const settle = (end: WorkerEnd) => {
        if (settled) return;
        settled = true;
        off();
        offExit();
        clearTimeout(grace);
        lease.removeEventListener("abort", onLease);
        stream.stopSignal.removeEventListener("abort", onStop);
        resolve(end);
      };
      // A person stopped the turn: the worker aborts it; one that does not is stopped with its sandbox.
      const onStop = () => {
        connection.send({ t: "cancel", sandboxId, turnId });
        grace = setTimeout(() => {
          this.deps.log.warn(
            { sandboxId, turnId },
            "the worker did not stop the turn; stopping its sandbox",
          );
          void this.deps.sandboxes
            .stop(sandboxId, "turn stopped")
            .catch((err) => this.deps.log.error({ err, sandboxId }, "could not stop the sandbox"));
        }, STOP_GRACE_MS);
        grace.unref();
      };
      const onLease = () => {
        connection.send({ t: "cancel", sandboxId, turnId });
        settle({ kind: "lease_lost" });
      };
      lease.addEventListener("abort", onLease, { once: true });
      const off = connection.onMessage((msg) => {
        if (!("sandboxId" in msg) || msg.sandboxId !== sandboxId) return;
        if (msg.t === "event" && msg.turnId === turnId) {
          const event = msg.event;
          events = events
            .then(() => this.onWorkerEvent(stream, connection, event))
            .catch((err) =>
              this.deps.log.error({ err, sandboxId }, "could not handle a worker event"),
            );
        } else if (msg.t === "turn_end" && msg.turnId === turnId) {
          // The worker is done: from here on its credentials and gateway tools stop, at once.
          void stream.end();
          void events.then(() => settle({ kind: "turn_end", msg }));
        }
      });
      // Not `exited.then(…)`: that would keep this turn's state until the sandbox stops.
      const offExit = whenFulfilled(instance.exited, (exit) => settle({ kind: "exit", exit }));
      connection.send({
        t: "turn",
        sandboxId,
        turnId,
        messageId: turn.messageId,
        text: input.text,
        context,
        ...(input.images.length ? { images: input.images } : {}),
        ...(traceparent ? { traceparent } : {}),
      });
      // After the turn is sent: the worker refuses a cancel for a turn it does not know.
      if (stream.stopSignal.aborted) onStop();
      else stream.stopSignal.addEventListener("abort", onStop, { once: true });
      // What the sandbox manager still has to tell the person (e.g. a repaired workspace).
      const notice = this.deps.sandboxes.takeNotice(sandboxId);
      if (notice) stream.emit({ type: "notice", level: "warn", text: notice });
    });
  }

  private async onWorkerEvent(
    stream: TurnStream,
    connection: WorkerConnection,
    event: AgentEvent,
  ): Promise<void> {
    switch (event.type) {
      case "question":
      case "approval_request":
      case "capability_request": {
        // Requests get a gateway-issued id: a worker cannot reach another sandbox's request.
        // What an approval shows is derived here from its input, never from the worker's words.
        let shown: RequestEvent = fromWorker({ ...event, requestId: newId("rq") });
        if (this.deps.decorateRequest) shown = await this.deps.decorateRequest(shown, stream.turn);
        const { sandboxId } = stream;
        await stream.ask(shown, (answer) => {
          if (answer)
            connection.send({ t: "answer", sandboxId, requestId: event.requestId, answer });
        });
        return;
      }
      case "text_delta":
      case "tool_call":
      case "tool_result":
      case "notice":
        stream.emit(event);
        return;
      default:
        // Lifecycle, usage and results are the gateway's to report, not the worker's.
        return;
    }
  }

  /** What the worker's end means for the message. */
  private verdictOf(end: WorkerEnd, stream: TurnStream): Verdict {
    // Stopped and not finished anyway: whatever the worker says, the person stopped it.
    const finished = end.kind === "turn_end" && end.msg.status === "done";
    if (stream.stoppedBy !== undefined && stream.failure && !finished && end.kind !== "lease_lost")
      return { kind: "stopped", error: stream.failure };
    switch (end.kind) {
      case "lease_lost":
        return { kind: "abandon" };
      case "exit":
        return {
          kind: "retry",
          reason: exitReason(end.exit),
          // A virtual pool that died of a neighbour's call: not this message's fault.
          charged: end.exit.reason !== "evicted",
        };
      case "turn_end": {
        const outcome = classifyTurnEnd(end.msg);
        switch (outcome.kind) {
          case "done":
            return { kind: "answer", text: outcome.text };
          case "retry":
            return { kind: "retry", reason: outcome.reason, charged: true };
          case "fail":
            // A budget refusal (the gateway's reason) is the error, not the worker's account of it.
            return { kind: "fail", error: stream.failure ?? outcome.error };
        }
      }
    }
  }

  /**
   * End the attempt. The turn ends first: the worker is done with it, so its
   * credentials close now, not after delivery, and requests still open expire
   * before the final event (every surface closes their cards).
   */
  private async conclude(
    stream: TurnStream,
    verdict: Verdict,
    attempt: number,
    lease: AbortSignal,
  ): Promise<TurnResult> {
    await stream.end();
    const code =
      verdict.kind === "fail" || verdict.kind === "stopped"
        ? verdict.error.code
        : verdict.kind === "retry"
          ? "retry"
          : undefined;
    if (code)
      gatewayMetrics().errors.add(1, {
        "lobu.agent": stream.turn.key.agentId,
        "error.type": code,
      });
    switch (verdict.kind) {
      case "answer":
        await this.finish(stream, { text: verdict.text });
        return "done";
      case "fail":
        await this.finish(stream, { error: verdict.error });
        return "done";
      case "stopped":
        await this.finish(stream, { error: verdict.error }, "stopped");
        return "done";
      case "abandon":
        await stream.close({ final: false });
        return "retry";
      case "retry": {
        const messageId = stream.turn.messageId;
        // Without the lease the message is not this gateway's to answer: whoever claims it next does.
        const again =
          lease.aborted ||
          (await this.deps.attempts.mayRetry(messageId, attempt, { charged: verdict.charged }));
        if (again) {
          await stream.close({ final: false });
          return "retry";
        }
        const message = `The agent could not answer: ${verdict.reason}`;
        await this.finish(stream, { error: { code: "agent_failed", message } });
        return "done";
      }
    }
  }

  /** The final event, then the conversation history and the message record, then delivery. */
  private async finish(
    stream: TurnStream,
    outcome: { text: string } | { error: TurnFailure },
    status: "error" | "stopped" = "error",
    history = true,
  ): Promise<void> {
    const { conversations } = this.deps;
    const { turn } = stream;
    const now = Date.now();
    if ("text" in outcome) {
      const text = outcome.text.slice(0, MAX_REPLY_CHARS);
      stream.emit({ type: "done", text });
      if (history)
        await conversations.appendHistory(turn.conversationId, {
          role: "assistant",
          text,
          messageId: turn.messageId,
          at: now,
        });
      await conversations.updateMessage(turn.messageId, {
        status: "done",
        reply: text,
        completedAt: now,
      });
    } else {
      stream.emit({ type: "error", ...outcome.error });
      await conversations.appendHistory(turn.conversationId, {
        role: "error",
        text: outcome.error.message,
        messageId: turn.messageId,
        at: now,
      });
      await conversations.updateMessage(turn.messageId, {
        status,
        error: outcome.error,
        completedAt: now,
      });
    }
    await stream.close({ final: true });
  }
}

function exitReason(exit: ExitInfo): string {
  switch (exit.reason) {
    case "oom":
      return "it ran out of memory";
    case "disk_full":
      return "its disk is full";
    case "evicted":
      return "its sandbox was stopped by another sandbox's crash";
    default:
      return `its worker stopped (${exit.reason})`;
  }
}
