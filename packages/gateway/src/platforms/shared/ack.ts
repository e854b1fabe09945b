import type { Logger } from "pino";

/**
 * How a platform's transport wants its deliveries answered (Bolt's
 * ResponseAck, one per transport): how long it waits, whether it delivers
 * again, and so how hard a delivery tries to store its message before it
 * fails. Everything that must happen before the answer is verifying, the
 * once-marker and storing the message (Inbound.submit); everything else
 * (settings links, explanations, card updates) runs in the Background.
 */
export interface AckPolicy {
  /** The transport, for log lines ("Slack Events API"). */
  readonly transport: string;
  /**
   * How long the platform waits for the answer before it counts the delivery
   * as failed; undefined when it states no limit (or the transport has no
   * answer to wait for).
   */
  readonly deadlineMs?: number;
  /**
   * The platform delivers a failed (or late) delivery again: a failure is
   * answered as one (5xx, or no ack), and its copies are handled once.
   */
  readonly redelivers: boolean;
  /**
   * Attempts at storing a message within one delivery (shared/inbound.ts
   * submitInbound). More than one where a failure would lose the message, or
   * where the platform's own redelivery comes late.
   */
  readonly storeAttempts: number;
}

/**
 * Handle one delivery under `policy`. Handling that outlives the platform's
 * deadline is logged (once): the platform will deliver it again and the copy
 * is handled once, so nothing breaks, but it means the work before the answer
 * is too slow.
 */
export async function withinDeadline<T>(
  policy: AckPolicy,
  log: Logger,
  handle: () => Promise<T>,
): Promise<T> {
  const { deadlineMs } = policy;
  if (deadlineMs === undefined) return handle();
  const timer = setTimeout(
    () =>
      log.warn(
        { deadlineMs },
        `${policy.transport}: a delivery is still being handled after the platform's deadline; it will be delivered again (and handled once)`,
      ),
    deadlineMs,
  );
  timer.unref();
  try {
    return await handle();
  } finally {
    clearTimeout(timer);
  }
}
