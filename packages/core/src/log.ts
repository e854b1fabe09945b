import { isSpanContextValid, trace } from "@opentelemetry/api";
import { type LevelWithSilent, type Logger, pino } from "pino";

/**
 * Every real secret value the process knows is registered here; log lines are
 * scrubbed of them on the way out, whatever field they hide in.
 *
 * Two ways in: `registerSecret` for values the process holds for its whole
 * life (a bot token, a key from config), and `holdSecrets(owner, …)` for
 * values that are replaced over time (a stored secret, an OAuth token pair):
 * holding new values for an owner drops its previous ones, and
 * `releaseSecrets(owner)` drops them when the owner is gone. So the registry
 * holds the live values only (bounded by the owners that exist), and a live
 * value is always redacted.
 */
const permanent = new Set<string>();
const held = new Map<string, readonly string[]>();
let secretPattern: RegExp | undefined;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function rebuild(): void {
  const all = new Set(permanent);
  for (const values of held.values()) for (const v of values) all.add(v);
  const values = [...all].filter((v) => v.length >= 6).sort((a, b) => b.length - a.length);
  // JSON-escaped forms too: a secret containing quotes or backslashes is logged escaped.
  const forms = new Set<string>();
  for (const v of values) {
    forms.add(v);
    forms.add(JSON.stringify(v).slice(1, -1));
  }
  secretPattern = forms.size ? new RegExp([...forms].map(escapeRegex).join("|"), "g") : undefined;
}

/** A value redacted for the rest of the process's life. */
export function registerSecret(value: string): void {
  if (!value || permanent.has(value)) return;
  permanent.add(value);
  rebuild();
}

/** Stop redacting `value`, however it was registered. */
export function forgetSecret(value: string): void {
  let changed = permanent.delete(value);
  for (const [owner, values] of held) {
    if (!values.includes(value)) continue;
    const rest = values.filter((v) => v !== value);
    if (rest.length) held.set(owner, rest);
    else held.delete(owner);
    changed = true;
  }
  if (changed) rebuild();
}

/** The values `owner` holds now, redacted until replaced by its next call or released. */
export function holdSecrets(owner: string, values: readonly (string | undefined)[]): void {
  const next = [...new Set(values.filter((v): v is string => !!v))].sort();
  const prev = held.get(owner);
  if (prev && prev.length === next.length && prev.every((v, i) => v === next[i])) return;
  if (next.length === 0) held.delete(owner);
  else held.set(owner, next);
  rebuild();
}

/** `owner` holds no values any more (its secret was deleted, its connection ended). */
export function releaseSecrets(owner: string): void {
  if (held.delete(owner)) rebuild();
}

/** How many values are registered (permanent and held): for tests and metrics. */
export function registeredSecretCount(): number {
  const all = new Set(permanent);
  for (const values of held.values()) for (const v of values) all.add(v);
  return all.size;
}

export function redactSecrets(text: string): string {
  return secretPattern ? text.replace(secretPattern, "[REDACTED]") : text;
}

export interface LogOptions {
  level?: LevelWithSilent;
  /** Where JSON lines go; stderr by default so stdout stays for command output. */
  destination?: { write(line: string): unknown };
}

/**
 * The trace a line was written in (W3C ids, as OpenTelemetry's log data model
 * names them), so a log line leads to its trace. Nothing outside a span.
 */
function traceIds(): Record<string, string> {
  const span = trace.getActiveSpan()?.spanContext();
  if (!span || !isSpanContextValid(span)) return {};
  return {
    trace_id: span.traceId,
    span_id: span.spanId,
    trace_flags: `0${span.traceFlags.toString(16)}`.slice(-2),
  };
}

export function createLogger(name: string, opts: LogOptions = {}): Logger {
  const dest = opts.destination ?? process.stderr;
  const level = opts.level ?? (process.env.LOBU_LOG_LEVEL as LevelWithSilent | undefined) ?? "info";
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      mixin: traceIds,
      redact: {
        paths: ["*.apiKey", "*.api_key", "*.token", "*.password", "*.authorization", "*.secret"],
        censor: "[REDACTED]",
      },
    },
    { write: (line: string) => dest.write(redactSecrets(line)) },
  );
}

export type { Logger };
