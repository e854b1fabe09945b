import type { TurnEndStatus, TurnErrorCode, TurnFailureCode, WorkerToGateway } from "@lobu/core";

/**
 * What a worker's `turn_end` means, decided in one place: the turn runner
 * reads whether the message is answered, tried again or failed; the sandbox
 * manager reads what it says about the sandbox's health.
 */

export type TurnEnd = Extract<WorkerToGateway, { t: "turn_end" }>;

/** What a turn's end says about its sandbox. */
export type TurnHealth =
  /** It answered: whatever was wrong before is over. */
  | { kind: "healthy" }
  /**
   * It failed. `breaks`: why the sandbox cannot go on as it is (it is repaired
   * before its next turn). `counts`: the failure counts toward the agent's
   * failures in a row (repeated ones break it too).
   */
  | { kind: "failed"; breaks?: string; counts: boolean; detail: string };

export interface TurnFailure {
  code: TurnFailureCode;
  message: string;
}

export type TurnEndOutcome =
  | { kind: "done"; text: string; health: TurnHealth }
  /** Deliver the message again; `reason` is shown if no attempt is left. */
  | { kind: "retry"; reason: string; health?: TurnHealth }
  | {
      kind: "fail";
      error: { code: TurnErrorCode | Exclude<TurnEndStatus, "done">; message: string };
      health?: TurnHealth;
    };

interface CodeRule {
  /** Retry the message instead of showing the error; the reason if no attempt is left. */
  retry?: string;
  /** The sandbox is broken for this reason. */
  breaks?: string;
  /** Counts toward the agent's failures in a row. */
  counts: boolean;
}

/** One rule per worker error code: a code without one does not compile. */
const RULES = {
  busy: { retry: "its sandbox was busy", counts: false },
  // The manager repairs the saved state from a snapshot before the next start,
  // so the message is tried again rather than the error shown.
  state_corrupt: {
    retry: "its saved state was damaged",
    breaks: "its saved state was damaged",
    counts: false,
  },
  worker_error: { counts: true },
  agent_error: { counts: true },
  // The model's provider failed, not the sandbox.
  model_error: { counts: false },
} as const satisfies { [C in TurnErrorCode]: CodeRule };

/** Worker error messages that mean the sandbox's disk is full. */
const DISK_FULL = /ENOSPC|EDQUOT|no space left|disk quota/i;

const HEALTHY: TurnHealth = { kind: "healthy" };

export function classifyTurnEnd(msg: TurnEnd): TurnEndOutcome {
  switch (msg.status) {
    case "done":
      return { kind: "done", text: msg.text, health: HEALTHY };
    case "error":
    case "cancelled": {
      const error = msg.error;
      const rule: CodeRule | undefined = error ? RULES[error.code] : undefined;
      const health: TurnHealth | undefined =
        msg.status === "error" && error
          ? {
              kind: "failed",
              breaks: DISK_FULL.test(error.message) ? "its disk was full" : rule?.breaks,
              counts: rule?.counts ?? false,
              detail: `${error.code}: ${error.message.slice(0, 300)}`,
            }
          : undefined;
      if (rule?.retry) return { kind: "retry", reason: rule.retry, health };
      return {
        kind: "fail",
        error: error ?? {
          code: msg.status,
          message: msg.status === "cancelled" ? "the turn was cancelled" : "the turn failed",
        },
        health,
      };
    }
  }
}
