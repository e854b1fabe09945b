import type { RequestAnswer } from "@lobu/core";
import type { Logger } from "pino";
import type { Origin } from "../domain/origin.ts";
import type { TurnStream } from "./turn-stream.ts";

/**
 * Which turn is running on each sandbox right now: the one registry of
 * running turns. A turn's stream (turn-stream.ts) registers itself here when
 * it begins and leaves when it ends, and everything that acts only inside a
 * running turn asks here:
 *
 * - credentials: the egress gate (turn-gate.ts), the egress policy and the LLM
 *   relay (`current`); a person's own credentials act only inside that
 *   person's turns;
 * - the egress side's events: the relay's usage and budget refusals (`stream`);
 * - gateway tool calls (gateway-tools.ts) and answers to requests (`answer`).
 *
 * In-process is correct today: a sandbox's egress endpoint always lives on the
 * gateway process that runs its turns. A design with sandboxes reachable from
 * several gateways would replace it behind the `TurnRegistry` interface.
 */

export interface RunningTurn {
  /** `<messageId>.<attempt>`: every delivery of a message is its own turn. */
  turnId: string;
  messageId: string;
  agentId: string;
  /** The sender (`platform:workspace:user`): whose credentials, domains and budget this turn uses. */
  userKey: string;
  origin: Origin;
  /** The model the turn was given; the relay forwards calls for it (and the agent's `models`). */
  model: { provider: string; id: string };
  /** The W3C trace context spans made on the turn's behalf go under (relay, egress, gateway tools). */
  traceparent?: string;
}

/** The read side (egress gate, policy, relay). */
export interface TurnRegistry {
  current(sandboxId: string): RunningTurn | null;
}

/** Revokes turn-bound placeholders (PlaceholderRegistry.revokeTurns). */
export interface TurnCredentialRevoker {
  revokeTurns(sandboxId: string, which: { turnId: string } | { except: string }): Promise<number>;
}

interface Entry {
  turn: RunningTurn;
  stream: TurnStream | undefined;
}

export class ActiveTurns implements TurnRegistry {
  readonly #running = new Map<string, Entry>();
  readonly #revoker: TurnCredentialRevoker | undefined;
  readonly #log: Logger | undefined;

  constructor(opts: { revoker?: TurnCredentialRevoker; log?: Logger } = {}) {
    this.#revoker = opts.revoker;
    this.#log = opts.log;
  }

  /**
   * Open the sandbox's gate for `turn` (TurnStream.begin calls this with
   * itself). Turn-bound placeholders of other turns (left by a gateway that
   * died mid-turn) are revoked first.
   */
  async begin(sandboxId: string, turn: RunningTurn, stream?: TurnStream): Promise<void> {
    this.#running.set(sandboxId, { turn: { ...turn }, stream });
    await this.#revoke(sandboxId, { except: turn.turnId });
  }

  /**
   * Close the gate (at once, before anything asynchronous) and revoke the turn's
   * placeholders. Safe to call more than once and for a turn that never began.
   */
  async end(sandboxId: string, turnId: string): Promise<void> {
    if (this.#running.get(sandboxId)?.turn.turnId === turnId) this.#running.delete(sandboxId);
    await this.#revoke(sandboxId, { turnId });
  }

  current(sandboxId: string): RunningTurn | null {
    return this.#running.get(sandboxId)?.turn ?? null;
  }

  /** The stream of the turn running on `sandboxId`, if one runs on this gateway. */
  stream(sandboxId: string): TurnStream | undefined {
    return this.#running.get(sandboxId)?.stream;
  }

  /** An answer for a request of the turn running on `sandboxId`; false when it is not one here. */
  answer(sandboxId: string, requestId: string, answer: RequestAnswer): boolean {
    return this.stream(sandboxId)?.answer(requestId, answer) ?? false;
  }

  async #revoke(sandboxId: string, which: { turnId: string } | { except: string }): Promise<void> {
    if (!this.#revoker) return;
    try {
      await this.#revoker.revokeTurns(sandboxId, which);
    } catch (err) {
      // The gate is closed already; a leftover binding stays inert and the next turn's begin retries.
      this.#log?.warn({ err, sandboxId }, "could not revoke a turn's placeholders");
    }
  }
}
