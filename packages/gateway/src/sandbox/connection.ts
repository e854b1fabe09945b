import type { Duplex } from "node:stream";
import {
  type GatewayToWorker,
  type Logger,
  readNdjson,
  WorkerToGateway,
  writeNdjson,
} from "@lobu/core";
import type { WorkerConnection } from "./driver.ts";

/** Messages kept while nobody listens yet; a worker that talks more than this before anyone listens loses the oldest. */
const MAX_QUEUED = 1000;

/**
 * The control channel to one worker process: NDJSON over a stream (fd 3 of the
 * worker). Everything the worker says is untrusted: lines that are not valid
 * WorkerToGateway messages are dropped and logged, never delivered.
 */
export class ChannelConnection implements WorkerConnection {
  readonly pid: number | undefined;
  readonly #channel: Duplex;
  readonly #logger: Logger;
  readonly #bindings: Record<string, unknown>;
  readonly #listeners = new Set<(msg: WorkerToGateway) => void>();
  readonly #queue: WorkerToGateway[] = [];
  #closed = false;
  #invalid = 0;

  constructor(
    channel: Duplex,
    opts: { pid: number | undefined; logger: Logger; bindings?: Record<string, unknown> },
  ) {
    this.pid = opts.pid;
    this.#channel = channel;
    this.#logger = opts.logger;
    this.#bindings = opts.bindings ?? {};
    readNdjson(
      channel,
      (value) => this.#receive(value),
      (err) => this.#reject(err.message),
    );
    const onGone = () => {
      this.#closed = true;
    };
    channel.on("close", onGone);
    channel.on("end", onGone);
    // A worker that dies mid-write must not crash the gateway.
    channel.on("error", (err) => {
      this.#closed = true;
      this.#logger.debug({ ...this.#bindings, err: err.message }, "worker control channel error");
    });
  }

  /** False once the worker side has gone away. */
  get open(): boolean {
    return !this.#closed && !this.#channel.destroyed && this.#channel.writable;
  }

  /** Number of messages dropped as invalid so far. */
  get invalidCount(): number {
    return this.#invalid;
  }

  send(msg: GatewayToWorker): void {
    if (!this.open) {
      this.#logger.warn(
        { ...this.#bindings, t: msg.t },
        "message to a worker that is no longer connected was dropped",
      );
      return;
    }
    writeNdjson(this.#channel, msg);
  }

  onMessage(listener: (msg: WorkerToGateway) => void): () => void {
    this.#listeners.add(listener);
    if (this.#listeners.size === 1 && this.#queue.length > 0) {
      const queued = this.#queue.splice(0);
      for (const msg of queued) this.#deliver(msg);
    }
    return () => {
      this.#listeners.delete(listener);
    };
  }

  close(): void {
    this.#closed = true;
    this.#channel.destroy();
  }

  #receive(value: unknown): void {
    const parsed = WorkerToGateway.safeParse(value);
    if (!parsed.success) {
      const t =
        typeof value === "object" && value !== null ? (value as { t?: unknown }).t : undefined;
      this.#reject(
        `invalid message${typeof t === "string" ? ` (t=${t.slice(0, 40)})` : ""}: ${parsed.error.issues
          .slice(0, 3)
          .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
          .join("; ")}`,
      );
      return;
    }
    if (this.#listeners.size === 0) {
      this.#queue.push(parsed.data);
      if (this.#queue.length > MAX_QUEUED) this.#queue.shift();
      return;
    }
    this.#deliver(parsed.data);
  }

  #deliver(msg: WorkerToGateway): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(msg);
      } catch (err) {
        this.#logger.error(
          { ...this.#bindings, err: (err as Error).message, t: msg.t },
          "worker message listener threw",
        );
      }
    }
  }

  #reject(reason: string): void {
    this.#invalid++;
    // Logged at warn for the first few, then only every 100th: a hostile worker must not flood the log.
    if (this.#invalid <= 10 || this.#invalid % 100 === 0) {
      this.#logger.warn(
        { ...this.#bindings, invalid: this.#invalid },
        `dropped message from worker: ${reason.slice(0, 300)}`,
      );
    }
  }
}
