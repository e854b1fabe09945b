import { z } from "zod";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parse `"90s"`, `"10m"`, `"1h30m"` or a plain number of seconds into milliseconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) throw new Error(`invalid duration ${value}`);
    return value * 1000;
  }
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  let total = 0;
  let rest = text;
  const part = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)/;
  if (!rest) throw new Error("empty duration");
  while (rest) {
    const m = part.exec(rest);
    if (!m) throw new Error(`invalid duration "${value}" (use e.g. 30s, 10m, 1h)`);
    total += Number(m[1]) * (UNITS[m[2]!] ?? 0);
    rest = rest.slice(m[0].length);
  }
  return total;
}

/** Zod type for a duration field; the parsed value is milliseconds. */
export const Duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
