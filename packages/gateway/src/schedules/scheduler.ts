import { errorMessage, isLobuError } from "@lobu/core";
import type { Logger } from "pino";
import type { AuditLog } from "../audit/log.ts";
import type { InboundMessage, SubmitResult } from "../domain/messages.ts";
import type { Schedule, ScheduleStore } from "./records.ts";
import { localTime } from "./timing.ts";

/**
 * Fires due schedules: every gateway runs one. It looks for due schedules
 * every `pollMs` and wakes for the soonest one it knows of (and when told a
 * new one exists). A run is claimed in the store before it is fired (one
 * gateway wins), then submitted through the normal durable entrance as a
 * message from the schedule's person in the schedule's conversation, with the
 * run as its event id: a run fired twice (a gateway died between submitting
 * and settling) is one message. Runs missed while every gateway was down
 * fire once, late, when the first gateway starts.
 */

export interface SchedulerDeps {
  schedules: Pick<ScheduleStore, "listAll" | "claim" | "settle" | "cancel">;
  /** The durable inbound entrance (Inbound.submit). */
  submit: (message: InboundMessage) => Promise<SubmitResult>;
  audit: Pick<AuditLog, "record">;
  log: Logger;
  /** This gateway, as the owner of its claims. */
  owner: string;
  pollMs: number;
  /** How long a claim holds before another gateway may fire the run (default 60 s). */
  leaseMs?: number;
  now?: () => number;
}

/** A run this much after its time says it is late (the gateways were down). */
const LATE_MS = 60_000;
/** Longest single timer (Node's limit is about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Scheduler {
  readonly #d: SchedulerDeps;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = true;

  constructor(deps: SchedulerDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.wake();
  }

  /** Stop looking; waits for a pass in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** Look now (a schedule was added or changed). */
  wake(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#running = this.#pass().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        this.wake();
      }
    });
  }

  /** One pass: fire what is due, then sleep until the soonest next run or the next poll. */
  async #pass(): Promise<void> {
    let soonest = Number.POSITIVE_INFINITY;
    try {
      const all = await this.#d.schedules.listAll();
      for (const s of all) {
        if (this.#stopped) return;
        if (s.nextRunAt <= this.#now()) await this.#fire(s);
        else soonest = Math.min(soonest, s.nextRunAt);
      }
    } catch (err) {
      this.#d.log.error({ err: errorMessage(err) }, "looking for due schedules failed");
    }
    if (this.#stopped) return;
    const wait = Math.min(this.#d.pollMs, Math.max(0, soonest - this.#now()), MAX_TIMER_MS);
    this.#timer = setTimeout(() => this.wake(), wait);
    this.#timer.unref();
  }

  async #fire(s: Schedule): Promise<void> {
    const claimed = await this.#d.schedules.claim(s, this.#d.owner, this.#d.leaseMs ?? 60_000);
    if (!claimed) return;
    const runAt = claimed.nextRunAt;
    try {
      await this.#d.submit({
        origin: claimed.origin,
        text: runText(claimed, this.#now()),
        eventId: `schedule:${claimed.id}:${runAt}`,
        agentId: claimed.agentId,
        scheduleId: claimed.id,
      });
    } catch (err) {
      // A refusal (the agent is gone, the text is over the message limit) will not
      // change: the run is given up. Anything else is retried once the claim lapses.
      if (!isLobuError(err) || err.status >= 500) {
        this.#d.log.warn(
          { scheduleId: claimed.id, err: errorMessage(err) },
          "a schedule could not be fired; it is tried again when its claim lapses",
        );
        return;
      }
      this.#d.log.warn(
        { scheduleId: claimed.id, err: errorMessage(err) },
        "a schedule's run was refused and is skipped",
      );
      // An agent that is gone takes its schedules with it (they could never run again).
      if (err.code === "agent_not_found") {
        await this.#d.schedules.cancel(claimed.agentId, claimed.userKey, claimed.id);
        return;
      }
    }
    await this.#d.schedules.settle(claimed, runAt);
    this.#d.audit.record({
      action: "schedule.fired",
      actor: "system",
      agentId: claimed.agentId,
      details: { scheduleId: claimed.id, kind: claimed.kind, runAt: new Date(runAt).toISOString() },
    });
  }
}

/** The message a run puts into the conversation (the system prompt explains it to the agent). */
export function runText(s: Schedule, now: number): string {
  const what = s.kind === "cron" ? `recurring schedule ${s.id} (${s.cron})` : `reminder ${s.id}`;
  const late =
    now - s.nextRunAt > LATE_MS
      ? `; it was due ${localTime(s.nextRunAt, s.timezone)} ${s.timezone} and runs late because the gateway was down`
      : "";
  return `[scheduled: ${what}, set by this person${late}] ${s.text}`;
}
