import { type AgentEvent, newId, type RequestAnswer } from "@lobu/core";

type RequestEvent = Extract<
  AgentEvent,
  { type: "question" | "approval_request" | "capability_request" }
>;
type Distribute<T> = T extends unknown ? Omit<T, "requestId"> : never;

interface Pending {
  resolve(answer: RequestAnswer | null): void;
  timer: NodeJS.Timeout;
}

/**
 * Requests the agent makes of its user (questions, approvals, capability grants).
 * The event goes to the gateway, which renders it as buttons; the turn waits here
 * until an `answer` message arrives or the timeout passes (resolves null).
 */
export class RequestBroker {
  private readonly pending = new Map<string, Pending>();
  private readonly emit: (event: AgentEvent) => void;

  constructor(emit: (event: AgentEvent) => void) {
    this.emit = emit;
  }

  ask(
    event: Distribute<RequestEvent>,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<RequestAnswer | null> {
    const requestId = newId("rq");
    return new Promise((resolve) => {
      const finish = (answer: RequestAnswer | null) => {
        const p = this.pending.get(requestId);
        if (!p) return;
        clearTimeout(p.timer);
        this.pending.delete(requestId);
        resolve(answer);
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      this.pending.set(requestId, { resolve: finish, timer });
      signal?.addEventListener("abort", () => finish(null), { once: true });
      this.emit({ ...event, requestId } as RequestEvent);
    });
  }

  answer(requestId: string, answer: RequestAnswer): boolean {
    const p = this.pending.get(requestId);
    if (!p) return false;
    p.resolve(answer);
    return true;
  }

  cancelAll(): void {
    for (const p of [...this.pending.values()]) p.resolve(null);
  }
}
