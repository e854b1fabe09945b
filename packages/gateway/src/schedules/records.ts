import { LobuError, newId } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { Origin, userKeyOf } from "../domain/origin.ts";
import type { Person, PersonDataKind } from "../domain/person-data.ts";
import type { KeyValue } from "../store/port.ts";
import { readRecord } from "../util/stored-record.ts";
import { nextCronRun, type Plan } from "./timing.ts";

/**
 * Schedules in the store: one record per schedule under
 * `schedule:<agent>:<person>:<id>`, so a person's schedules are one prefix
 * and the due ones are one scan. A run is claimed with a lease written by
 * `kv.update` (compare-and-set), so of several gateways sharing the store one
 * fires it; a gateway that dies after claiming lets the lease lapse and
 * another fires it again, which the queue's deduplication (the run's event
 * id) turns into one message.
 */

export const Schedule = z.object({
  id: z.string(),
  agentId: z.string(),
  /** The person it belongs to (`platform:workspace:user`), the one its turns run for. */
  userKey: z.string(),
  /** The conversation it was set in; its runs are messages there, from that person. */
  origin: Origin,
  /** What the turn is asked to do (the reminder's text). */
  text: z.string(),
  kind: z.enum(["once", "cron"]),
  cron: z.string().optional(),
  timezone: z.string(),
  /** When it runs next (epoch ms); a run that was missed is late, never skipped. */
  nextRunAt: z.number(),
  createdAt: z.number(),
  lastRunAt: z.number().optional(),
  runs: z.number().default(0),
  /** A gateway firing the run at `nextRunAt` right now, until its lease lapses. */
  claim: z.object({ owner: z.string(), until: z.number() }).optional(),
});
export type Schedule = z.infer<typeof Schedule>;

/** How a schedule is shown (settings page, REST API): times as ISO strings. */
export interface ScheduleView {
  id: string;
  kind: Schedule["kind"];
  cron?: string;
  timezone: string;
  text: string;
  nextRunAt: string;
  createdAt: string;
  lastRunAt?: string;
  runs: number;
  /** Where its runs are posted. */
  platform: string;
  channelId: string;
}

export function scheduleView(s: Schedule): ScheduleView {
  return {
    id: s.id,
    kind: s.kind,
    ...(s.cron ? { cron: s.cron } : {}),
    timezone: s.timezone,
    text: s.text,
    nextRunAt: new Date(s.nextRunAt).toISOString(),
    createdAt: new Date(s.createdAt).toISOString(),
    ...(s.lastRunAt ? { lastRunAt: new Date(s.lastRunAt).toISOString() } : {}),
    runs: s.runs,
    platform: s.origin.platform,
    channelId: s.origin.channelId,
  };
}

const PREFIX = "schedule:";
const LIST_PAGE = 500;

function personPrefix(agentId: string, userKey: string): string {
  // userKey contains ':'; encoding keeps the prefixes of different people disjoint.
  return `${PREFIX}${agentId}:${encodeURIComponent(userKey)}:`;
}

export function scheduleKey(s: Pick<Schedule, "agentId" | "userKey" | "id">): string {
  return `${personPrefix(s.agentId, s.userKey)}${s.id}`;
}

export interface NewSchedule {
  agentId: string;
  origin: Origin;
  text: string;
  plan: Plan;
}

export class ScheduleStore {
  readonly #kv: KeyValue;
  readonly #log: Logger;
  readonly #maxPerPerson: number;
  readonly #now: () => number;

  constructor(deps: { kv: KeyValue; log: Logger; maxPerPerson: number; now?: () => number }) {
    this.#kv = deps.kv;
    this.#log = deps.log;
    this.#maxPerPerson = deps.maxPerPerson;
    this.#now = deps.now ?? Date.now;
  }

  /** Add a schedule for the person of `origin` (refused over their limit). */
  async create(input: NewSchedule): Promise<Schedule> {
    const userKey = userKeyOf(input.origin);
    const existing = await this.listFor(input.agentId, userKey);
    if (existing.length >= this.#maxPerPerson)
      throw new LobuError(
        "schedule_limit",
        `you have ${existing.length} schedules, the most one person may keep`,
        {
          status: 409,
          hint: "Cancel schedules you no longer need first (cancel_schedule, or the settings page).",
        },
      );
    const schedule: Schedule = {
      id: newId("sch"),
      agentId: input.agentId,
      userKey,
      origin: input.origin,
      text: input.text,
      kind: input.plan.kind,
      ...(input.plan.kind === "cron" ? { cron: input.plan.cron } : {}),
      timezone: input.plan.timezone,
      nextRunAt: input.plan.nextRunAt,
      createdAt: this.#now(),
      runs: 0,
    };
    await this.#kv.set(scheduleKey(schedule), JSON.stringify(schedule));
    return schedule;
  }

  /** A person's schedules for an agent, soonest first. */
  async listFor(agentId: string, userKey: string): Promise<Schedule[]> {
    return sortSoonest(await this.#scan(personPrefix(agentId, userKey)));
  }

  /** Every schedule of an agent (all agents when omitted), soonest first. */
  async listAll(agentId?: string): Promise<Schedule[]> {
    return sortSoonest(await this.#scan(agentId ? `${PREFIX}${agentId}:` : PREFIX));
  }

  /** One schedule of an agent by id (whoever it belongs to), or null. */
  async find(agentId: string, id: string): Promise<Schedule | null> {
    const all = await this.#scan(`${PREFIX}${agentId}:`);
    return all.find((s) => s.id === id) ?? null;
  }

  /** Cancel one of a person's schedules; false when they have no such schedule. */
  async cancel(agentId: string, userKey: string, id: string): Promise<boolean> {
    return this.#kv.del(scheduleKey({ agentId, userKey, id }));
  }

  /**
   * Claim the run of `s` at `s.nextRunAt` for `owner` until `leaseMs` from
   * now: the record when this caller got it, null when it was cancelled,
   * already fired, or another gateway holds a live claim.
   */
  async claim(s: Schedule, owner: string, leaseMs: number): Promise<Schedule | null> {
    let claimed: Schedule | null = null;
    await this.#kv.update(scheduleKey(s), (raw) => {
      claimed = null;
      const cur = raw === null ? undefined : this.#read(scheduleKey(s), raw);
      const now = this.#now();
      if (!cur || cur.nextRunAt !== s.nextRunAt || cur.nextRunAt > now) return undefined;
      if (cur.claim && cur.claim.until > now) return undefined;
      claimed = { ...cur, claim: { owner, until: now + leaseMs } };
      return JSON.stringify(claimed);
    });
    return claimed;
  }

  /**
   * The run at `runAt` was fired: a one-time schedule is done (deleted), a
   * recurring one moves to its first run after now, so runs missed while no
   * gateway was up collapse into the one just fired.
   */
  async settle(s: Schedule, runAt: number): Promise<void> {
    const key = scheduleKey(s);
    if (s.kind === "once") {
      await this.#kv.del(key);
      return;
    }
    let done = false;
    await this.#kv.update(key, (raw) => {
      done = false;
      const cur = raw === null ? undefined : this.#read(key, raw);
      if (!cur || cur.nextRunAt !== runAt) return undefined;
      const next = nextCronRun(cur.cron ?? "", cur.timezone, Math.max(this.#now(), runAt));
      if (next === null) {
        done = true;
        return undefined;
      }
      const { claim: _fired, ...rest } = cur;
      return JSON.stringify({ ...rest, nextRunAt: next, lastRunAt: runAt, runs: cur.runs + 1 });
    });
    if (done) await this.#kv.del(key);
  }

  #read(key: string, raw: string): Schedule | undefined {
    return readRecord(Schedule, raw, { record: "schedule", key }, this.#log, "it never runs");
  }

  /** The person's schedules with every agent, for their export and erasure (docs/retention.md). */
  personData(): PersonDataKind {
    const ofPerson = async (p: Person) =>
      (await this.#scan(PREFIX)).filter((s) => s.userKey === p.userKey);
    return {
      name: "schedules",
      export: async (p) =>
        (await ofPerson(p)).map(
          ({ id, agentId, text, kind, cron, timezone, nextRunAt, createdAt }) => ({
            id,
            agentId,
            text,
            kind,
            cron,
            timezone,
            nextRunAt,
            createdAt,
          }),
        ),
      erase: async (p) => {
        let schedules = 0;
        for (const s of await ofPerson(p)) if (await this.#kv.del(scheduleKey(s))) schedules++;
        return { schedules };
      },
    };
  }

  async #scan(prefix: string): Promise<Schedule[]> {
    const out: Schedule[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.#kv.list(prefix, { limit: LIST_PAGE, ...(after ? { after } : {}) });
      for (const { key, value } of page) {
        const s = this.#read(key, value);
        if (s && scheduleKey(s) === key) out.push(s);
      }
      if (page.length < LIST_PAGE) return out;
      after = page[page.length - 1]!.key;
    }
  }
}

function sortSoonest(list: Schedule[]): Schedule[] {
  return list.sort((a, b) => a.nextRunAt - b.nextRunAt);
}
