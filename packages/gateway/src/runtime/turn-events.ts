import type { AgentEvent } from "@lobu/core";
import type { TurnFailure } from "./turn-outcome.ts";

/** Where gateway-side events of one running turn go (the turn runner's own emitter). */
export interface TurnSink {
  emit(event: AgentEvent): void;
  /** The gateway refused something the turn needs: if the turn then fails, this is its error. */
  fail(error: TurnFailure): void;
}

/**
 * Gateway-side events into the turn running on a sandbox: the LLM relay's
 * usage, a model call refused over budget. The turn runner opens a sink for
 * each turn while it runs; the egress side writes here by sandbox id. Both get
 * this object when they are built, so neither needs the other.
 */
export class TurnEvents {
  readonly #open = new Map<string, TurnSink>();

  /** Route `sandboxId`'s events to `sink` until the returned close is called. */
  open(sandboxId: string, sink: TurnSink): () => void {
    this.#open.set(sandboxId, sink);
    return () => {
      if (this.#open.get(sandboxId) === sink) this.#open.delete(sandboxId);
    };
  }

  /** Emit into the turn running on `sandboxId`, if any. */
  emit(sandboxId: string, event: AgentEvent): void {
    this.#open.get(sandboxId)?.emit(event);
  }

  /** Record why the gateway stopped the turn on `sandboxId` (e.g. a budget refusal), if any runs. */
  fail(sandboxId: string, error: TurnFailure): void {
    this.#open.get(sandboxId)?.fail(error);
  }
}
