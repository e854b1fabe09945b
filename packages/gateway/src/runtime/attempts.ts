import type { Conversations } from "../conversations/records.ts";

/**
 * How many times a message is tried: one budget for every way a delivery can
 * fail, used by the turn runner (the worker failed) and the dispatcher (the
 * gateway's own turn code threw).
 *
 * - An **attempt** is a delivery of the message from the queue. The queue
 *   counts deliveries (`QueueClaim.attempts`, 1 on the first).
 * - A delivery is **charged** when it fails for a reason that may be the
 *   message's own: its sandbox did not start, its worker crashed, ran out of
 *   memory or disk, or said it could not go on (`busy`, damaged state), or the
 *   gateway's turn code threw. A gateway that dies mid-turn is charged too:
 *   its lease lapses and the next delivery's count includes it (the message may
 *   be what killed it).
 * - A delivery is **not charged** when the sandbox was evicted: a virtual pool
 *   died and its call journal blamed a neighbour. The victim's message is
 *   delivered again as if that delivery had not happened. Uncharged deliveries
 *   are counted on the message record (`unchargedAttempts`), so every gateway
 *   sees them.
 * - When the budget is used up the message is answered with an error instead
 *   (`agent_failed` from the runner, `internal` from the dispatcher's dead
 *   letter). `maxDeliveries` caps every delivery, charged or not, so a message
 *   that keeps being evicted stops somewhere too.
 * - A lost lease is no attempt of this gateway's: the gateway that claims the
 *   message next runs and counts it.
 */
export interface RetryPolicy {
  /** Charged deliveries a message may use; a failure of the last one is answered with an error. */
  maxAttempts: number;
  /** Deliveries in all, charged or not. */
  maxDeliveries: number;
}

export const RETRY_POLICY: RetryPolicy = { maxAttempts: 3, maxDeliveries: 10 };

/** Where a message's uncharged deliveries are kept (its record). */
export type AttemptRecords = Pick<Conversations, "getMessage" | "updateMessage">;

/** The retry policy applied to one message's deliveries. */
export class MessageAttempts {
  readonly policy: RetryPolicy;
  readonly #records: AttemptRecords;

  constructor(records: AttemptRecords, policy: RetryPolicy = RETRY_POLICY) {
    this.#records = records;
    this.policy = policy;
  }

  /**
   * Delivery `delivery` of message `messageId` failed: whether the message is
   * delivered again. An uncharged failure that is retried is written down, so
   * the next delivery does not count it.
   */
  async mayRetry(
    messageId: string,
    delivery: number,
    failure: { charged: boolean },
  ): Promise<boolean> {
    const uncharged = (await this.#records.getMessage(messageId))?.unchargedAttempts ?? 0;
    const retry = retryAllowed(this.policy, { delivery, uncharged, charged: failure.charged });
    if (retry && !failure.charged)
      await this.#records.updateMessage(messageId, { unchargedAttempts: uncharged + 1 });
    return retry;
  }
}

/** The policy itself, without storage: see RetryPolicy. */
export function retryAllowed(
  policy: RetryPolicy,
  count: {
    /** This delivery's number (1 on the first). */
    delivery: number;
    /** Earlier deliveries that were not charged. */
    uncharged: number;
    /** Whether this delivery's failure is charged. */
    charged: boolean;
  },
): boolean {
  const used = count.delivery - count.uncharged - (count.charged ? 0 : 1);
  return used < policy.maxAttempts && count.delivery < policy.maxDeliveries;
}
