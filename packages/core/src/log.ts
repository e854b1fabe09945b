import { isSpanContextValid, trace } from "@opentelemetry/api";
import { type LevelWithSilent, type Logger, pino } from "pino";

/**
 * Every real secret value the process knows is registered here; log lines are
 * scrubbed of them on the way out, whatever field they hide in.
 */
const secretValues = new Set<string>();
let secretPattern: RegExp | undefined;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function rebuild(): void {
  const values = [...secretValues].filter((v) => v.length >= 6).sort((a, b) => b.length - a.length);
  // JSON-escaped forms too: a secret containing quotes or backslashes is logged escaped.
  const forms = new Set<string>();
  for (const v of values) {
    forms.add(v);
    forms.add(JSON.stringify(v).slice(1, -1));
  }
  secretPattern = forms.size ? new RegExp([...forms].map(escapeRegex).join("|"), "g") : undefined;
}

export function registerSecret(value: string): void {
  if (!value || secretValues.has(value)) return;
  secretValues.add(value);
  rebuild();
}

export function forgetSecret(value: string): void {
  if (secretValues.delete(value)) rebuild();
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
