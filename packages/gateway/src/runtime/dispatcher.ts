import { errorMessage } from "@lobu/core";
import type { Logger } from "pino";
import { QueuedTurn } from "../domain/turns.ts";
import type { MessageQueue, QueueClaim } from "../store/port.ts";
import { decodeRecord, logUnreadable } from "../util/stored-record.ts";
import { type MessageAttempts, retryAllowed } from "./attempts.ts";
import type { SandboxPlacement } from "./placement.ts";
import type { TurnResult } from "./turn-runner.ts";

export interface DispatcherOptions {
  queue: MessageQueue;
  owner: string;
  /** Turns running at once on this gateway; more wait in the queue. */
  maxConcurrent: number;
  leaseMs?: number;
  run(turn: QueuedTurn, attempt: number, lease: AbortSignal): Promise<TurnResult>;
  /**
   * The message's retry budget (runtime/attempts.ts), the turn runner's too: a
   * message whose turn keeps throwing (a bug) is taken off the queue when it is
   * used up instead of being retried forever. One whose payload is not a
   * QueuedTurn (corrupt, or from an incompatible version) is taken off at once:
   * reading it again would not make it readable.
   */
  attempts: Pick<MessageAttempts, "mayRetry" | "policy">;
  /**
   * Several gateways: a message is claimed only when its sandbox runs here or
   * nowhere, and the sandbox is held here while its turn runs. Losing the
   * hold ends the turn as a lost lease does (another gateway runs it again).
   */
  placement?: Pick<SandboxPlacement, "lockPrefix" | "acquire" | "release">;
  /** Told about such a message, so its sender gets an answer (an error) after all. */
  onDeadLetter?(claim: QueueClaim, reason: string): Promise<void>;
  log: Logger;
}

/**
 * Pulls messages off the durable queue and runs them, at most `maxConcurrent`
 * at once and one per sandbox (the queue's partition lease). A message is
 * acknowledged only after its answer is recorded and delivered; if this
 * process dies, the lease lapses and another gateway (or this one, restarted)
 * picks it up again.
 */
export class Dispatcher {
  private readonly opts: DispatcherOptions;
  private readonly leaseMs: number;
  private readonly inFlight = new Map<string, Promise<void>>();
  private running = false;
  private wake: (() => void) | undefined;
  private unsubscribe: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(opts: DispatcherOptions) {
    this.opts = opts;
    this.leaseMs = opts.leaseMs ?? 30_000;
  }

  get activeCount(): number {
    return this.inFlight.size;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.opts.queue.onAvailable(() => this.poke());
    this.loop = this.run();
  }

  /** Check the queue now (new message, a slot freed). */
  poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async run(): Promise<void> {
    while (this.running) {
      let claimed = false;
      if (this.inFlight.size < this.opts.maxConcurrent) {
        try {
          const placement = this.opts.placement;
          const claim = await this.opts.queue.claim(this.opts.owner, this.leaseMs, {
            skip: [...this.inFlight.keys()],
            ...(placement ? { placement: placement.lockPrefix } : {}),
          });
          if (claim) {
            claimed = true;
            await this.place(claim);
          }
        } catch (err) {
          this.opts.log.error({ err }, "queue claim failed");
        }
      }
      if (!claimed && this.running) {
        // Sleep until something may be deliverable; poll as a safety net (delays, lapsed leases).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1000);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  /** Take the claimed message's sandbox for this gateway, then run it (without placement: run it). */
  private async place(claim: QueueClaim): Promise<void> {
    const placement = this.opts.placement;
    if (!placement) return this.launch(claim);
    let placed: Awaited<ReturnType<typeof placement.acquire>>;
    try {
      placed = await placement.acquire(claim.partition);
    } catch (err) {
      this.opts.log.error({ err, sandboxId: claim.partition }, "placement failed");
      placed = null;
    }
    if (!placed) {
      // Another gateway took the sandbox between the claim and now: it runs the message.
      await this.opts.queue.release(claim);
      return;
    }
    this.launch(claim, placed.lost, () => placement.release(claim.partition));
  }

  private launch(
    claim: QueueClaim,
    placementLost?: AbortSignal,
    unplace?: () => Promise<void>,
  ): void {
    const lease = new AbortController();
    // The placement's signal lives as long as the sandbox runs here (many turns):
    // the listener goes when this turn ends, or each turn would stay reachable from it.
    const onPlacementLost = () => lease.abort();
    placementLost?.addEventListener("abort", onPlacementLost, { once: true });
    if (placementLost?.aborted) lease.abort();
    const keepAlive = setInterval(() => {
      this.opts.queue.extend(claim, this.leaseMs).then(
        (ok) => {
          if (!ok) {
            this.opts.log.warn({ messageId: claim.id }, "lost the lease on a running message");
            lease.abort();
          }
        },
        (err) => this.opts.log.warn({ err }, "lease extension failed"),
      );
    }, this.leaseMs / 3);
    const deadLetter = (reason: string) =>
      this.opts
        .onDeadLetter?.(claim, reason)
        .catch((e) => this.opts.log.error({ err: e }, "dead-letter handling failed"));
    const work = (async () => {
      let result: TurnResult | "dead" = "done";
      try {
        const decoded = decodeRecord(QueuedTurn, claim.payload);
        if (decoded.ok) {
          result = await this.opts.run(decoded.record, claim.attempts, lease.signal);
        } else {
          const source = { record: "queued turn", key: `queue ${claim.partition} ${claim.id}` };
          logUnreadable(this.opts.log, source, decoded.reason, "dead-lettered");
          result = "dead";
          // The details are in the log line above; the sender is told what happened.
          await deadLetter(
            "its queued copy is unreadable (corrupt, or written by an incompatible version)",
          );
        }
      } catch (err) {
        this.opts.log.error({ err: errorMessage(err), messageId: claim.id }, "turn crashed");
        result = (await this.mayRetryCrash(claim)) ? "retry" : "dead";
        if (result === "dead") await deadLetter(errorMessage(err));
      } finally {
        clearInterval(keepAlive);
        placementLost?.removeEventListener("abort", onPlacementLost);
      }
      if (lease.signal.aborted) return;
      if (result === "done" || result === "dead") await this.opts.queue.ack(claim);
      else await this.opts.queue.release(claim, { delayMs: 500 });
    })()
      .catch((err) => this.opts.log.error({ err }, "finishing a message failed"))
      .then(() => unplace?.())
      .catch((err) => this.opts.log.warn({ err }, "placement not given back"))
      .finally(() => {
        this.inFlight.delete(claim.partition);
        this.poke();
      });
    this.inFlight.set(claim.partition, work);
  }

  /** A crash of the gateway's own turn code is charged to the message. */
  private async mayRetryCrash(claim: QueueClaim): Promise<boolean> {
    const { attempts, log } = this.opts;
    const count = { delivery: claim.attempts, charged: true };
    try {
      return await attempts.mayRetry(claim.id, count.delivery, count);
    } catch (err) {
      // The record is unreadable: count every delivery, so the message still stops.
      log.warn({ err, messageId: claim.id }, "could not read a message's attempts");
      return retryAllowed(attempts.policy, { ...count, uncharged: 0 });
    }
  }

  /** Stop claiming; wait for running turns up to `graceMs`, then leave them to lapse. */
  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    this.unsubscribe?.();
    this.poke();
    await this.loop;
    await Promise.race([
      Promise.all(this.inFlight.values()),
      new Promise((r) => setTimeout(r, graceMs).unref()),
    ]);
  }
}
