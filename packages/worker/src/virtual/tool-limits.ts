/**
 * Bounds on the virtual tools' parameters. Many sessions share one pool process, so no
 * parameter the model sends may make a call cost more than a bounded amount of memory or
 * time: out-of-range numbers are refused with a message that says what is allowed, and
 * numbers above a bound are lowered to it (the result says so).
 */

export interface CountBounds {
  /** Used when the parameter is absent. */
  fallback: number;
  min: number;
  /** Larger values are lowered to this. */
  max: number;
}

export const TOOL_BOUNDS = {
  grep: {
    limit: { fallback: 100, min: 1, max: 1000 },
    context: { fallback: 0, min: 0, max: 50 },
  },
  find: { limit: { fallback: 1000, min: 1, max: 10_000 } },
  ls: { limit: { fallback: 500, min: 1, max: 5000 } },
  read: {
    offset: { fallback: 1, min: 0, max: Number.MAX_SAFE_INTEGER },
    limit: { fallback: 2000, min: 1, max: 100_000 },
  },
} as const satisfies Record<string, Record<string, CountBounds>>;

/** How far find and grep walk: entries looked at and directory depth. */
export const WALK_LIMITS = { maxEntries: 100_000, maxDepth: 64 } as const;

/** A parameter the model sent that the tool cannot accept; the message says what to send. */
export class ToolInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ToolInputError";
  }
}

/** A count parameter: absent → fallback; not a whole number in range → error; too big → max. */
export function countParam(
  tool: string,
  name: string,
  value: unknown,
  bounds: CountBounds,
): { value: number; capped: boolean } {
  if (value === undefined || value === null) return { value: bounds.fallback, capped: false };
  if (typeof value !== "number" || !Number.isFinite(value) || value < bounds.min) {
    throw new ToolInputError(
      `${tool}: ${name} must be a whole number of at least ${bounds.min} (at most ${bounds.max} is used); got ${JSON.stringify(value)}.`,
    );
  }
  const whole = Math.floor(value);
  return whole > bounds.max ? { value: bounds.max, capped: true } : { value: whole, capped: false };
}

/** The note appended to a result whose parameters were lowered. */
export function cappedNote(tool: string, capped: Array<[name: string, max: number]>): string {
  const parts = capped.map(([name, max]) => `${name} was lowered to ${max}`);
  return `[${tool}: ${parts.join(", ")}, the most this tool accepts]`;
}
