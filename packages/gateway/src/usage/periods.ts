/**
 * The periods usage is counted in: UTC calendar days and months (the same
 * everywhere, whatever the gateway's time zone), and a rolling minute made of
 * one-second buckets.
 */

export type Period = "day" | "month";

/** `2026-01-31` for the UTC day of `at`. */
export function dayOf(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}

/** `2026-01` for the UTC month of `at`. */
export function monthOf(at: number): string {
  return new Date(at).toISOString().slice(0, 7);
}

/** The id of the period `at` falls in: `d:2026-01-31` or `m:2026-01`. */
export function periodId(period: Period, at: number): string {
  return period === "day" ? `d:${dayOf(at)}` : `m:${monthOf(at)}`;
}

/** When the period `at` falls in ends (epoch ms): the next 00:00 UTC, or the 1st of the next month. */
export function periodEnd(period: Period, at: number): number {
  const d = new Date(at);
  return period === "day"
    ? Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
    : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** The rolling minute: this many one-second buckets, the current one included. */
export const WINDOW_SECONDS = 60;

/** The one-second buckets of the rolling minute ending at `at`, oldest first. */
export function windowSeconds(at: number): number[] {
  const now = Math.floor(at / 1000);
  return Array.from({ length: WINDOW_SECONDS }, (_, i) => now - WINDOW_SECONDS + 1 + i);
}

/** A wait for people: `42 s`, `5 min`, `3 h 12 min`, `12 d 3 h` (rounded up, never "0 s"). */
export function formatWait(ms: number): string {
  const seconds = Math.max(1, Math.ceil(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}
