import type { Logger } from "pino";
import { z } from "zod";
import { type ConversationHistory, HistoryUnavailable } from "../domain/history.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import type { KeyValue } from "../store/port.ts";
import { readRecord } from "../util/stored-record.ts";
import { fitBudget, type HistoryBudget, withThreadHistory } from "./history-view.ts";

export interface ThreadContextDeps {
  /** The history of a platform's conversations, when it has one. */
  historyFor(platform: string): ConversationHistory | undefined;
  budget: HistoryBudget;
  /** Where each conversation's place in each thread is kept (`ThreadSeen`). */
  kv: KeyValue;
  log: Logger;
}

/**
 * How far a conversation has been given a thread: up to the message of its
 * last turn there (`upTo`, the platform's id). A turn of the same message
 * again (a retry) is given what the first try was (`after`).
 */
export const ThreadSeen = z.object({
  messageId: z.string(),
  after: z.string().optional(),
  upTo: z.string(),
});
export type ThreadSeen = z.infer<typeof ThreadSeen>;

/** A conversation's turns are in its own transcript; what they were given is kept this long. */
const SEEN_TTL_MS = 30 * 86_400_000;

/** Set once other people's words entered a conversation's transcript (it keeps them). */
const othersKey = (turn: QueuedTurn) => `context-others:${turn.conversationId}`;

const seenKey = (turn: QueuedTurn) =>
  `thread-seen:${turn.conversationId}:${turn.origin.platform}:${turn.origin.channelId}:${turn.origin.threadId ?? ""}`;

/**
 * What a turn's text is when its message continues a thread: the thread's
 * earlier messages (from the platform, newest kept within the budget) as
 * data, then the message itself. A conversation that had a turn in the thread
 * before gets only what came after that turn's message: the rest is in its
 * transcript already. Reading history never fails a turn: when the platform
 * cannot give it, the agent is told so and the message goes on.
 */
export class ThreadContext {
  readonly #deps: ThreadContextDeps;

  constructor(deps: ThreadContextDeps) {
    this.#deps = deps;
  }

  async textFor(turn: QueuedTurn): Promise<string> {
    return (await this.contextFor(turn)).text;
  }

  /**
   * The turn's text, and whether it carries words of someone other than the
   * sender (`othersWrote`: a thread message by another person or a bot). Tools
   * whose effect outlives the turn ask the sender first then (gateway-tools.ts).
   */
  async contextFor(turn: QueuedTurn): Promise<{ text: string; othersWrote: boolean }> {
    const { text, othersWrote } = await this.#context(turn);
    const key = othersKey(turn);
    // What an earlier turn was given stays in the transcript: a later turn that
    // brings nothing new still has it before the model.
    if (othersWrote) await this.#deps.kv.set(key, "1", { ttlMs: SEEN_TTL_MS });
    return { text, othersWrote: othersWrote || (await this.#deps.kv.get(key)) !== null };
  }

  async #context(turn: QueuedTurn): Promise<{ text: string; othersWrote: boolean }> {
    const { budget, log } = this.#deps;
    const alone = { text: turn.text, othersWrote: false };
    const history = this.#deps.historyFor(turn.origin.platform);
    if (!history || budget.maxMessages === 0 || budget.maxChars === 0) return alone;
    const sender = turn.origin.userName ?? turn.origin.userId;
    const after = await this.#after(turn);
    let recent: Awaited<ReturnType<ConversationHistory["recent"]>>;
    try {
      recent = await history.recent(
        { origin: turn.origin, conversationId: turn.conversationId },
        { limit: budget.maxMessages, ...(after !== undefined ? { after } : {}) },
      );
    } catch (err) {
      log.warn(
        { err, platform: turn.origin.platform, messageId: turn.messageId },
        "could not read the thread's earlier messages",
      );
      // A platform's refusal is said as it is; anything else only as a failure (no internals).
      const why = err instanceof HistoryUnavailable ? err.message : "the platform did not answer";
      return {
        text: `(The earlier messages of this thread could not be read: ${why}.)\n\n${turn.text}`,
        othersWrote: false,
      };
    }
    await this.#remember(turn, after);
    const { kept, dropped } = fitBudget(recent.messages, budget);
    const text = withThreadHistory(
      { text: turn.text, sender },
      {
        messages: kept,
        older: recent.earlier || dropped > 0,
        seenBefore: after !== undefined,
        platform: turn.origin.platform,
      },
    );
    // Shown only when something new came (withThreadHistory); the agent's own replies are not others'.
    const othersWrote =
      text !== turn.text &&
      kept.some((m) => !m.fromAssistant && (m.fromBot || m.authorId !== turn.origin.userId));
    return { text, othersWrote };
  }

  /** Where this conversation's view of the thread starts: after its last turn's message there. */
  async #after(turn: QueuedTurn): Promise<string | undefined> {
    const key = seenKey(turn);
    const raw = await this.#deps.kv.get(key);
    const seen = raw
      ? readRecord(ThreadSeen, raw, { record: "thread seen", key }, this.#deps.log)
      : undefined;
    if (!seen) return undefined;
    return seen.messageId === turn.messageId ? seen.after : seen.upTo;
  }

  async #remember(turn: QueuedTurn, after: string | undefined): Promise<void> {
    const upTo = turn.origin.messageRef;
    if (!upTo) return;
    const seen: ThreadSeen = { messageId: turn.messageId, upTo, ...(after ? { after } : {}) };
    await this.#deps.kv.set(seenKey(turn), JSON.stringify(seen), { ttlMs: SEEN_TTL_MS });
  }
}
