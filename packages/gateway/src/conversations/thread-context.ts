import type { Logger } from "pino";
import { type ConversationHistory, HistoryUnavailable } from "../domain/history.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import { fitBudget, type HistoryBudget, withThreadHistory } from "./history-view.ts";

export interface ThreadContextDeps {
  /** The history of a platform's conversations, when it has one. */
  historyFor(platform: string): ConversationHistory | undefined;
  budget: HistoryBudget;
  log: Logger;
}

/**
 * What a turn's text is when its message continues a thread: the thread's
 * earlier messages (from the platform, newest kept within the budget) as
 * data, then the message itself. Reading history never fails a turn: when the
 * platform cannot give it, the agent is told so and the message goes on.
 */
export class ThreadContext {
  readonly #deps: ThreadContextDeps;

  constructor(deps: ThreadContextDeps) {
    this.#deps = deps;
  }

  async textFor(turn: QueuedTurn): Promise<string> {
    const { budget, log } = this.#deps;
    const history = this.#deps.historyFor(turn.origin.platform);
    if (!history || budget.maxMessages === 0 || budget.maxChars === 0) return turn.text;
    const sender = turn.origin.userName ?? turn.origin.userId;
    let recent: Awaited<ReturnType<ConversationHistory["recent"]>>;
    try {
      recent = await history.recent(
        { origin: turn.origin, conversationId: turn.conversationId },
        { limit: budget.maxMessages },
      );
    } catch (err) {
      log.warn(
        { err, platform: turn.origin.platform, messageId: turn.messageId },
        "could not read the thread's earlier messages",
      );
      // A platform's refusal is said as it is; anything else only as a failure (no internals).
      const why = err instanceof HistoryUnavailable ? err.message : "the platform did not answer";
      return `(The earlier messages of this thread could not be read: ${why}.)\n\n${turn.text}`;
    }
    const { kept, dropped } = fitBudget(recent.messages, budget);
    return withThreadHistory(
      { text: turn.text, sender },
      { messages: kept, older: recent.earlier || dropped > 0, platform: turn.origin.platform },
    );
  }
}
