import { LobuError } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import type { AuditLog } from "../audit/log.ts";
import type { Conversations, MessageRecord } from "../conversations/records.ts";
import { userKeyOf } from "../domain/origin.ts";
import { QueuedTurn } from "../domain/turns.ts";
import type { Store } from "../store/port.ts";
import { decodeRecord } from "../util/stored-record.ts";
import type { ActiveTurns } from "./active-turns.ts";

const CHANNEL = "stops";
/** A stop is remembered this long, for a turn that had not begun when it came. */
const MARKER_TTL_MS = 3_600_000;
const markerKey = (messageId: string) => `stop:${messageId}`;

/** What travels over pub/sub to the gateway that runs the turn. */
const StopNotice = z.object({ sandboxId: z.string(), messageId: z.string(), by: z.string() });
type StopNotice = z.infer<typeof StopNotice>;

/** Who asks for a stop. */
export interface Stopper {
  /** The person asking (`platform:workspace:user`); absent for an admin token. */
  userKey?: string;
  /** May stop anyone's turn: `[admin] users` and admin tokens. */
  admin: boolean;
  /** How the thread names them ("alice", "api:ops"). */
  label: string;
  /** The audit log's actor. */
  actor: string;
}

/** A conversation (its running turn), or one message (running: stopped; queued: dropped). */
export type StopTarget = { conversationId: string } | { messageId: string };

export interface StopOptions {
  /** Also drop the messages waiting behind it (those the stopper may stop). */
  clearQueue?: boolean;
}

export interface StopOutcome {
  conversationId: string;
  /** The message whose turn was stopped, if one was running. */
  stopped: string | null;
  /** Queued messages dropped before they ran. */
  dropped: string[];
  /** Queued messages left to run (not dropped, or someone else's). */
  kept: number;
}

export interface TurnStopsDeps {
  store: Pick<Store, "kv" | "pubsub" | "queue">;
  conversations: Pick<Conversations, "getMessage" | "updateMessage">;
  /** Where this gateway's running turns are. */
  turns: Pick<ActiveTurns, "stream">;
  audit: Pick<AuditLog, "record">;
  log: Logger;
}

/**
 * Stopping a turn from any surface (a chat button, reaction or `stop`
 * message, the REST API, the CLI). A stop never goes through the
 * conversation's queue, which holds the turn it stops: it is written down
 * (a marker the runner reads when a turn begins or is claimed) and published
 * over the store's pub/sub, so the gateway running the turn stops it at once,
 * wherever the stop arrived. Who may stop: the person whose message started
 * the turn, or an admin — in a shared (per-channel) conversation nobody else.
 */
export class TurnStops {
  readonly #deps: TurnStopsDeps;
  #unsubscribe: (() => Promise<void>) | undefined;

  constructor(deps: TurnStopsDeps) {
    this.#deps = deps;
  }

  async stop(target: StopTarget, by: Stopper, opts: StopOptions = {}): Promise<StopOutcome> {
    const { conversationId, named } = await this.#resolve(target);
    const waiting = await this.#waiting(conversationId);
    const running = named
      ? named.status === "running"
        ? named
        : undefined
      : waiting.find((m) => m.status === "running");
    const queued = waiting.filter((m) => m.status === "queued");
    // A named message still waiting is dropped; without clearQueue only that one.
    const toDrop = opts.clearQueue
      ? queued
      : named?.status === "queued"
        ? queued.filter((m) => m.id === named.id)
        : [];
    if (!running && toDrop.length === 0) throw notRunning(named);
    if (running) this.#assertMayStop(running, by);
    if (!running && named) this.#assertMayStop(named, by);
    const dropped: string[] = [];
    for (const m of toDrop) {
      if (!this.#mayStop(m, by)) continue;
      await this.#mark(m.id, by.label);
      await this.#deps.conversations.updateMessage(m.id, {
        status: "stopped",
        error: { code: "turn_stopped", message: `Dropped by ${by.label} before it ran.` },
        completedAt: Date.now(),
      });
      dropped.push(m.id);
    }
    if (running) {
      await this.#mark(running.id, by.label);
      await this.#deps.store.pubsub.publish(
        CHANNEL,
        JSON.stringify({
          sandboxId: running.conversationId,
          messageId: running.id,
          by: by.label,
        } satisfies StopNotice),
      );
    }
    this.#deps.audit.record({
      action: "turn.stopped",
      actor: by.actor,
      sandboxId: conversationId,
      details: { stopped: running?.id ?? null, dropped },
    });
    return {
      conversationId,
      stopped: running?.id ?? null,
      dropped,
      kept: queued.length - dropped.length,
    };
  }

  /** Who stopped `messageId` before its turn began, if someone did. */
  requested(messageId: string): Promise<string | null> {
    return this.#deps.store.kv.get(markerKey(messageId));
  }

  /** Stop turns running on this gateway when a stop for them is published (anywhere). */
  async start(): Promise<void> {
    this.#unsubscribe = await this.#deps.store.pubsub.subscribe(CHANNEL, (message) => {
      const decoded = decodeRecord(StopNotice, message);
      if (!decoded.ok) {
        this.#deps.log.warn({ reason: decoded.reason }, "unreadable stop message; dropped");
        return;
      }
      const { sandboxId, messageId, by } = decoded.record;
      const stream = this.#deps.turns.stream(sandboxId);
      if (stream?.turn.messageId === messageId && stream.stop(by))
        this.#deps.log.info({ sandboxId, messageId }, "turn stopped");
    });
  }

  async close(): Promise<void> {
    await this.#unsubscribe?.();
  }

  /** The conversation a stop is for, and the message it names (if it names one). */
  async #resolve(
    target: StopTarget,
  ): Promise<{ conversationId: string; named: MessageRecord | undefined }> {
    if (!("messageId" in target))
      return { conversationId: target.conversationId, named: undefined };
    const named = await this.#deps.conversations.getMessage(target.messageId);
    if (!named) throw new LobuError("not_found", "no such message", { status: 404 });
    return { conversationId: named.conversationId, named };
  }

  /** The conversation's messages in the queue (running first), oldest first. */
  async #waiting(conversationId: string): Promise<MessageRecord[]> {
    const pending = await this.#deps.store.queue.pending(conversationId, { limit: 1000 });
    const out: MessageRecord[] = [];
    for (const item of pending) {
      const decoded = decodeRecord(QueuedTurn, item.payload);
      if (!decoded.ok) continue;
      const rec = await this.#deps.conversations.getMessage(decoded.record.messageId);
      if (rec) out.push(rec);
    }
    return out;
  }

  #mayStop(message: MessageRecord, by: Stopper): boolean {
    return by.admin || by.userKey === userKeyOf(message.origin);
  }

  #assertMayStop(message: MessageRecord, by: Stopper): void {
    if (this.#mayStop(message, by)) return;
    const sender = message.origin.userName ?? message.origin.userId;
    throw new LobuError(
      "forbidden",
      `only ${sender}, who sent the message, or an admin can stop this turn`,
      { status: 403 },
    );
  }

  async #mark(messageId: string, by: string): Promise<void> {
    await this.#deps.store.kv.set(markerKey(messageId), by, { ttlMs: MARKER_TTL_MS });
  }
}

function notRunning(named: MessageRecord | undefined): LobuError {
  if (named)
    return new LobuError(
      "turn_not_running",
      `message ${named.id} is not running (it is ${named.status}); nothing was stopped`,
      { status: 409 },
    );
  return new LobuError(
    "turn_not_running",
    "nothing is running in this conversation; nothing was stopped",
    { status: 409 },
  );
}

/**
 * What a stop did beyond the stopped reply (which says who stopped it), in
 * one line for the person who asked (Markdown); empty when nothing more.
 */
export function stopSummary(outcome: StopOutcome): string {
  const parts: string[] = [];
  const n = outcome.dropped.length;
  if (n > 0) parts.push(`⏹️ Dropped ${n} queued message${n === 1 ? "" : "s"}.`);
  if (outcome.kept > 0) {
    const hint = n === 0 ? " (`stop all` drops them)" : "";
    parts.push(
      `${outcome.kept} queued message${outcome.kept === 1 ? "" : "s"} will still run${hint}.`,
    );
  }
  return parts.join(" ");
}
