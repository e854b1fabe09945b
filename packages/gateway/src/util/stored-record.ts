import type { z } from "zod";

/**
 * Records read back from durable storage (the store's keys, streams and queue
 * payloads, a platform's state) are checked against the zod schema that
 * describes what was written, the same schema their TypeScript type is
 * inferred from. A value that is not JSON or does not match (corrupt, or
 * written by an incompatible version) is never handed on as a valid record.
 * Each reader decides what an unreadable record means for it (absent, skipped,
 * dead-lettered; see docs/architecture.md, "Stored records"), and the log
 * says what was lost: the kind of record, its key and why.
 */
export type Decoded<T> = { ok: true; record: T } | { ok: false; reason: string };

/** How many schema problems a reason names before it says "and N more". */
const MAX_ISSUES = 3;

/** Where an unreadable record is reported (a pino logger fits). */
export interface RecordLog {
  error(obj: object, msg: string): void;
}

/** Parse and validate `raw`; the reason never quotes the value (it may hold anything). */
export function decodeRecord<T>(schema: z.ZodType<T>, raw: string): Decoded<T> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, reason: "not valid JSON" };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, record: parsed.data };
  const issues = parsed.error.issues;
  const named = issues
    .slice(0, MAX_ISSUES)
    .map((i) => `${i.path.length ? i.path.join(".") : "(record)"}: ${i.message}`);
  if (issues.length > MAX_ISSUES) named.push(`and ${issues.length - MAX_ISSUES} more`);
  return { ok: false, reason: named.join("; ") };
}

/** What a stored value is and where it lives, for the log line of an unreadable one. */
export interface RecordSource {
  /** The kind of record (`message`, `api token`, ...). */
  record: string;
  /** Its store key (or stream and entry id). Keys never hold secrets: credentials are keyed by digest. */
  key: string;
}

/**
 * The record stored as `raw`, or undefined when it is unreadable; then the log
 * says which record was lost and why (`what` is what the caller does instead).
 */
export function readRecord<T>(
  schema: z.ZodType<T>,
  raw: string,
  source: RecordSource,
  log: RecordLog,
  what = "skipped",
): T | undefined {
  const decoded = decodeRecord(schema, raw);
  if (decoded.ok) return decoded.record;
  logUnreadable(log, source, decoded.reason, what);
  return undefined;
}

export function logUnreadable(
  log: RecordLog,
  source: RecordSource,
  reason: string,
  what = "skipped",
): void {
  log.error(
    { record: source.record, key: source.key, reason },
    `stored ${source.record} is unreadable (corrupt or from an incompatible version); ${what}`,
  );
}
