/**
 * Where `lobu run` sends the gateway's log lines (pino JSON, already scrubbed of
 * secrets by the logger).
 *
 * - `json` (default when stderr is not a terminal: a service manager, a file, a
 *   pipe): the JSON lines as they are, for machines.
 * - `pretty` (default on a terminal): one short human line per record,
 *   `12:00:01 WARN  message key=value`.
 *
 * Either way, lines logged while the gateway starts are held back and written
 * after the startup banner, so the banner stays one readable block. Override
 * with `LOBU_LOG_FORMAT=json|pretty`.
 */

export type LogFormat = "json" | "pretty";

export function logFormat(env: NodeJS.ProcessEnv, stream: { isTTY?: boolean }): LogFormat {
  const wanted = env.LOBU_LOG_FORMAT?.trim().toLowerCase();
  if (wanted === "json" || wanted === "pretty") return wanted;
  if (wanted) throw new Error(`LOBU_LOG_FORMAT must be "json" or "pretty", got "${wanted}"`);
  return stream.isTTY ? "pretty" : "json";
}

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};
/** Fields every record has, shown elsewhere in the line or not at all. */
const FRAME = new Set(["level", "time", "pid", "hostname", "name", "msg"]);

function value(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/** One pino JSON line as a human line (lines that are not JSON pass through). */
export function prettyLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith("\n") ? line : `${line}\n`;
  }
  const time = new Date(typeof rec.time === "number" ? rec.time : Date.now());
  const clock = time.toTimeString().slice(0, 8);
  const level = (LEVELS[Number(rec.level)] ?? String(rec.level)).padEnd(5);
  const fields = Object.entries(rec)
    .filter(([k]) => !FRAME.has(k))
    .map(([k, v]) => `${k}=${value(v)}`);
  return `${clock} ${level} ${String(rec.msg ?? "")}${fields.length ? ` ${fields.join(" ")}` : ""}\n`;
}

/** Keeps at most this many startup lines; a start that logs more says how many it dropped. */
const HELD_MAX = 500;

export class ConsoleLogSink {
  readonly format: LogFormat;
  readonly #out: { write(text: string): unknown };
  #held: string[] | undefined = [];
  #dropped = 0;

  constructor(format: LogFormat, out: { write(text: string): unknown }) {
    this.format = format;
    this.#out = out;
  }

  write(line: string): void {
    const text = this.format === "pretty" ? prettyLine(line) : line;
    if (!this.#held) {
      this.#out.write(text);
      return;
    }
    if (this.#held.length < HELD_MAX) this.#held.push(text);
    else this.#dropped++;
  }

  /** Write what was held back during startup; from now on lines go straight out. */
  release(): void {
    const held = this.#held;
    if (!held) return;
    this.#held = undefined;
    for (const text of held) this.#out.write(text);
    if (this.#dropped)
      this.#out.write(
        this.format === "pretty"
          ? `(${this.#dropped} more startup log lines dropped)\n`
          : `${JSON.stringify({ level: 40, time: Date.now(), msg: "startup log lines dropped", dropped: this.#dropped })}\n`,
      );
  }
}
