import { formatDuration, isTimeZone, LobuError, parseDuration } from "@lobu/core";
import { Cron } from "croner";

/**
 * When a schedule runs: once at an absolute time (`at`, ISO 8601; without an
 * offset it is wall-clock time in the schedule's time zone), once after a
 * delay (`in`, e.g. `90m`, `1d2h`), or on a cron pattern (five fields:
 * minute hour day-of-month month day-of-week) in an IANA time zone, daylight
 * saving included. Everything is checked against the operator's limits here,
 * once, with errors that say what to send instead.
 */

export interface When {
  at?: string | undefined;
  in?: string | undefined;
  cron?: string | undefined;
  timezone?: string | undefined;
}

export interface TimingLimits {
  /** Shortest gap between two runs of a recurring schedule (ms). */
  minIntervalMs: number;
  /** Furthest ahead a one-time schedule may be (ms). */
  maxHorizonMs: number;
  defaultTimezone: string;
}

export type Plan =
  | {
      kind: "once";
      timezone: string;
      nextRunAt: number;
      /** Said to the person: the wall-clock time asked for does not exist (a daylight-saving gap). */
      note?: string;
    }
  | { kind: "cron"; cron: string; timezone: string; nextRunAt: number };

/** Runs of a cron pattern checked against the minimum interval when it is set. */
const RUNS_CHECKED = 50;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?$/;

export function invalidSchedule(message: string, hint?: string): LobuError {
  return new LobuError("invalid_schedule", message, { status: 400, ...(hint ? { hint } : {}) });
}

/** The plan for `when`, or a clear refusal (past time, bad zone, cron too frequent, ...). */
export function planSchedule(when: When, limits: TimingLimits, now: number): Plan {
  const given = (["at", "in", "cron"] as const).filter((k) => when[k] !== undefined);
  if (given.length !== 1)
    throw invalidSchedule(
      given.length === 0
        ? "say when: one of at, in or cron"
        : `give only one of at, in and cron (got ${given.join(", ")})`,
      'e.g. {"in":"2h"}, {"at":"2026-12-24T09:00","timezone":"Europe/Berlin"} or {"cron":"0 9 * * 1-5","timezone":"America/New_York"}',
    );
  const timezone = when.timezone ?? limits.defaultTimezone;
  if (!isTimeZone(timezone))
    throw invalidSchedule(
      `"${timezone.slice(0, 64)}" is not a time zone`,
      "Use an IANA time zone name such as Europe/Berlin, America/New_York or UTC.",
    );
  if (when.cron !== undefined) return planCron(when.cron, timezone, limits, now);
  const runAt = when.at !== undefined ? parseAt(when.at, timezone) : now + parseDelay(when.in!);
  const note = when.at !== undefined ? skippedNote(when.at.trim(), timezone, runAt) : undefined;
  if (runAt <= now)
    throw invalidSchedule(
      `${when.at} is in the past (it is now ${localTime(now, timezone)} in ${timezone})`,
      "Pick a time in the future.",
    );
  if (runAt - now > limits.maxHorizonMs)
    throw invalidSchedule(
      `that is more than ${span(limits.maxHorizonMs)} ahead, the furthest a schedule may be set`,
      "Pick an earlier time.",
    );
  return { kind: "once", timezone, nextRunAt: runAt, ...(note ? { note } : {}) };
}

/**
 * When a wall-clock `at` falls in a daylight-saving gap (02:30 on the night
 * the clocks jump from 02:00 to 03:00), croner moves it past the gap; the
 * person is told rather than finding out at the time.
 */
function skippedNote(at: string, timezone: string, runAt: number): string | undefined {
  if (/(Z|[+-]\d{2}:\d{2})$/.test(at)) return undefined;
  const asked = at.slice(0, 16).replace("T", " ");
  const runs = localTime(runAt, timezone);
  if (runs === asked) return undefined;
  return `${asked} does not exist in ${timezone} (the clocks skip it), so it runs at ${runs.slice(runs.startsWith(asked.slice(0, 10)) ? 11 : 0)}`;
}

/** The first run of `cron` strictly after `after` (null: it never runs again). */
export function nextCronRun(cron: string, timezone: string, after: number): number | null {
  return cronOf(cron, timezone).nextRun(new Date(after))?.getTime() ?? null;
}

/** `ms` as wall-clock time in `timezone`, for messages (`2026-12-24 09:00`). */
export function localTime(ms: number, timezone: string): string {
  return new Intl.DateTimeFormat("sv-SE", {
    timeZone: timezone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  }).format(new Date(ms));
}

function planCron(cron: string, timezone: string, limits: TimingLimits, now: number): Plan {
  const pattern = cron.trim().replace(/\s+/g, " ");
  let runs: Date[];
  try {
    runs = cronOf(pattern, timezone).nextRuns(RUNS_CHECKED, new Date(now));
  } catch (err) {
    throw invalidSchedule(
      `"${pattern.slice(0, 100)}" is not a cron pattern: ${(err as Error).message.replace(/^CronPattern: /, "")}`,
      'Use five fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * 1-5" (09:00 on weekdays).',
    );
  }
  const first = runs[0];
  if (!first) throw invalidSchedule(`"${pattern}" never runs after now`);
  for (let i = 1; i < runs.length; i++) {
    const gap = runs[i]!.getTime() - runs[i - 1]!.getTime();
    if (gap < limits.minIntervalMs)
      throw invalidSchedule(
        `"${pattern}" runs every ${span(gap)} at times; recurring schedules may run at most every ${span(limits.minIntervalMs)}`,
        "Choose a less frequent pattern (the operator sets the minimum: schedules.min_interval).",
      );
  }
  return { kind: "cron", cron: pattern, timezone, nextRunAt: first.getTime() };
}

/** A duration for messages: whole days as days (`30d`), else as the config writes it. */
function span(ms: number): string {
  return ms >= 86_400_000 && ms % 86_400_000 === 0 ? `${ms / 86_400_000}d` : formatDuration(ms);
}

function cronOf(pattern: string, timezone: string): Cron {
  return new Cron(pattern, { timezone, paused: true, mode: "5-part" });
}

function parseAt(at: string, timezone: string): number {
  const text = at.trim();
  const invalid = () =>
    invalidSchedule(
      `"${text.slice(0, 64)}" is not a date and time`,
      "Use ISO 8601, e.g. 2026-12-24T09:00 (in the schedule's time zone) or 2026-12-24T08:00Z.",
    );
  if (
    !ISO.test(text) ||
    !isCalendarDate(text) ||
    Number.isNaN(Date.parse(text.replace(/(Z|[+-]\d{2}:\d{2})?$/, "Z")))
  )
    throw invalid();
  if (/(Z|[+-]\d{2}:\d{2})$/.test(text)) return Date.parse(text);
  try {
    // Wall-clock time in the zone (croner resolves daylight-saving gaps and overlaps).
    const once = new Cron(text, { timezone, paused: true }).getOnce();
    if (!once || Number.isNaN(once.getTime())) throw invalid();
    return once.getTime();
  } catch {
    throw invalid();
  }
}

/** Whether the date of `YYYY-MM-DDT…` exists: Date would roll 2027-02-30 over into March. */
function isCalendarDate(text: string): boolean {
  const [y, m, d] = text.slice(0, 10).split("-").map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

function parseDelay(delay: string): number {
  let ms: number;
  try {
    ms = parseDuration(delay);
  } catch {
    ms = Number.NaN;
  }
  if (!Number.isFinite(ms) || ms < 1_000)
    throw invalidSchedule(
      `"${String(delay).slice(0, 64)}" is not a delay`,
      'Use a duration such as "30s", "10m", "2h" or "1d12h".',
    );
  return ms;
}
