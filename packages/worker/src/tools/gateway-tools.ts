import type { ToolDefinition } from "@earendil-works/pi-coding-agent";
import {
  type GatewayToolErrorCode,
  type GatewayToolSpec,
  newId,
  type WorkerToGateway,
} from "@lobu/core";
import type { TSchema } from "typebox";

export interface GatewayToolOutcome {
  ok: boolean;
  output?: string;
  /** The gateway's refusal, or `cancelled` here when the turn or session ended first. */
  error?: { code: GatewayToolErrorCode | "cancelled"; message: string };
}

/**
 * Calls to gateway-side tools in flight, by call id: `gateway_tool_call` goes
 * out, the matching `gateway_tool_result` settles it. One per worker process
 * (call ids are unique across its sandboxes).
 */
export class GatewayCalls {
  readonly #send: (msg: WorkerToGateway) => void;
  readonly #pending = new Map<string, { sandboxId: string; settle(o: GatewayToolOutcome): void }>();

  constructor(send: (msg: WorkerToGateway) => void) {
    this.#send = send;
  }

  call(
    sandboxId: string,
    turnId: string,
    tool: string,
    input: unknown,
    signal?: AbortSignal,
    traceparent?: string,
  ): Promise<GatewayToolOutcome> {
    const callId = newId("gtc");
    return new Promise((resolve) => {
      const settle = (outcome: GatewayToolOutcome) => {
        if (!this.#pending.delete(callId)) return;
        signal?.removeEventListener("abort", onAbort);
        resolve(outcome);
      };
      const onAbort = () =>
        settle({ ok: false, error: { code: "cancelled", message: "the turn was cancelled" } });
      if (signal?.aborted) return onAbort();
      this.#pending.set(callId, { sandboxId, settle });
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#send({
        t: "gateway_tool_call",
        sandboxId,
        turnId,
        callId,
        tool,
        input,
        ...(traceparent ? { traceparent } : {}),
      });
    });
  }

  /** The gateway's answer to a call of `sandboxId` (answers naming another sandbox are ignored). */
  result(sandboxId: string, callId: string, outcome: GatewayToolOutcome): void {
    const pending = this.#pending.get(callId);
    if (pending?.sandboxId === sandboxId) pending.settle(outcome);
  }

  /** The sandbox's session ends: nothing will answer its calls any more. */
  cancelAll(sandboxId: string): void {
    for (const pending of [...this.#pending.values()]) {
      if (pending.sandboxId === sandboxId)
        pending.settle({ ok: false, error: { code: "cancelled", message: "the session ended" } });
    }
  }
}

/**
 * A gateway-side tool as a native pi tool: it forwards the call to the gateway,
 * which applies the tool policy, asks the person when it must and runs it. No
 * approval happens here: the worker is inside the sandbox and untrusted, so the
 * gateway decides.
 */
export function gatewayTool(
  spec: GatewayToolSpec,
  call: (tool: string, input: unknown, signal?: AbortSignal) => Promise<GatewayToolOutcome>,
): ToolDefinition {
  return {
    name: spec.name,
    label: spec.name,
    description: spec.description,
    parameters: spec.parameters as unknown as TSchema,
    executionMode: "sequential",
    async execute(_id, params, signal) {
      const outcome = await call(spec.name, params, signal);
      if (!outcome.ok) {
        throw new Error(
          outcome.error?.message ?? `the gateway did not run ${spec.name} (no reason given)`,
        );
      }
      return { content: [{ type: "text", text: outcome.output ?? "" }], details: undefined };
    },
  };
}
