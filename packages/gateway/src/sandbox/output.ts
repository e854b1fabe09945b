import type { Readable } from "node:stream";
import type { Logger } from "@lobu/core";

export interface OutputCaptureOptions {
  logger: Logger;
  /** Bound into every log line (e.g. `{ sandboxId }`). */
  bindings: Record<string, unknown>;
  /** Lines kept for crash diagnostics. */
  tailLines?: number;
  /** Longer lines are cut (in the log and the tail). */
  maxLineLength?: number;
  /** Log at most this many lines in a burst... */
  burstLines?: number;
  /** ...refilled at this many lines per second; the rest are counted and reported as dropped. */
  linesPerSecond?: number;
}

/**
 * Copies a worker's stdout/stderr into the gateway log without letting a chatty or
 * hostile worker flood it, and keeps the last lines for crash reports.
 */
export class OutputCapture {
  readonly #opts: Required<Omit<OutputCaptureOptions, "logger" | "bindings">>;
  readonly #logger: Logger;
  readonly #bindings: Record<string, unknown>;
  readonly #tail: string[] = [];
  #tokens: number;
  #lastRefill = Date.now();
  #dropped = 0;

  constructor(opts: OutputCaptureOptions) {
    this.#logger = opts.logger;
    this.#bindings = opts.bindings;
    this.#opts = {
      tailLines: opts.tailLines ?? 50,
      maxLineLength: opts.maxLineLength ?? 2000,
      burstLines: opts.burstLines ?? 100,
      linesPerSecond: opts.linesPerSecond ?? 20,
    };
    this.#tokens = this.#opts.burstLines;
  }

  attach(stream: Readable | null | undefined, name: "stdout" | "stderr"): void {
    if (!stream) return;
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      partial += chunk;
      let nl = partial.indexOf("\n");
      while (nl !== -1) {
        this.#line(name, partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        nl = partial.indexOf("\n");
      }
      // A line without end is flushed in pieces rather than buffered without bound.
      while (partial.length > this.#opts.maxLineLength) {
        this.#line(name, partial.slice(0, this.#opts.maxLineLength));
        partial = partial.slice(this.#opts.maxLineLength);
      }
    });
    stream.on("end", () => {
      if (partial) this.#line(name, partial);
      partial = "";
    });
  }

  /** The last lines the worker printed, oldest first (`[stderr] ...`). */
  tail(): string[] {
    return [...this.#tail];
  }

  tailText(): string {
    return this.#tail.join("\n");
  }

  #line(stream: string, raw: string): void {
    const text = raw.replace(/\r$/, "");
    if (!text.trim()) return;
    const line =
      text.length > this.#opts.maxLineLength
        ? `${text.slice(0, this.#opts.maxLineLength)}… (${text.length} chars)`
        : text;
    this.#tail.push(`[${stream}] ${line}`);
    if (this.#tail.length > this.#opts.tailLines) this.#tail.shift();

    const now = Date.now();
    this.#tokens = Math.min(
      this.#opts.burstLines,
      this.#tokens + ((now - this.#lastRefill) / 1000) * this.#opts.linesPerSecond,
    );
    this.#lastRefill = now;
    if (this.#tokens < 1) {
      this.#dropped++;
      return;
    }
    this.#tokens--;
    if (this.#dropped > 0) {
      this.#logger.warn(
        { ...this.#bindings, dropped: this.#dropped },
        "worker output rate limited: lines dropped",
      );
      this.#dropped = 0;
    }
    this.#logger.info({ ...this.#bindings, stream }, line);
  }
}
