import type { AgentEvent, GatewayToWorker, TurnErrorCode, WorkerToGateway } from "@lobu/core";
import type {
  DriverProbe,
  ExitInfo,
  SandboxDriver,
  SandboxInstance,
  WorkerConnection,
} from "../../src/sandbox/driver.ts";

/**
 * Test doubles for the sandbox seam, so the runtime runs without sandboxes: a
 * driver whose sandboxes are linked connections, with the test playing the
 * worker on the other end. Messages cross on a later microtask in both
 * directions, as lines on a real control channel do.
 */

type TurnMessage = Extract<GatewayToWorker, { t: "turn" }>;

/** The worker's end of one sandbox's connection, driven by the test. */
export class LinkedWorker {
  readonly id: string;
  /** Everything the gateway sent, in order. */
  readonly received: GatewayToWorker[] = [];
  readonly instance: SandboxInstance;
  readonly #listeners = new Set<(msg: WorkerToGateway) => void>();
  readonly #waiters: { t: GatewayToWorker["t"]; resolve: (msg: GatewayToWorker) => void }[] = [];
  /** How many of each kind the test has taken with next(). */
  readonly #taken = new Map<string, number>();
  #exit!: (info: ExitInfo) => void;
  #gone = false;

  constructor(id: string) {
    this.id = id;
    const exited = new Promise<ExitInfo>((resolve) => {
      this.#exit = resolve;
    });
    const connection: WorkerConnection = {
      pid: 4242,
      send: (msg) => {
        if (this.#gone) return;
        queueMicrotask(() => this.#receive(msg));
      },
      onMessage: (listener) => {
        this.#listeners.add(listener);
        return () => this.#listeners.delete(listener);
      },
    };
    this.instance = {
      id,
      driver: "linked",
      startedAt: Date.now(),
      connection,
      exited,
      usage: async () => ({}),
    };
  }

  get connection(): WorkerConnection {
    return this.instance.connection;
  }

  /** The worker says something to the gateway. */
  send(msg: WorkerToGateway): void {
    queueMicrotask(() => {
      for (const listener of [...this.#listeners]) listener(msg);
    });
  }

  /** The next message of kind `t` from the gateway that the test has not taken yet. */
  next<T extends GatewayToWorker["t"]>(t: T): Promise<Extract<GatewayToWorker, { t: T }>> {
    const taken = this.#taken.get(t) ?? 0;
    this.#taken.set(t, taken + 1);
    const seen = this.received.filter((m) => m.t === t)[taken];
    if (seen) return Promise.resolve(seen as Extract<GatewayToWorker, { t: T }>);
    return new Promise((resolve) =>
      this.#waiters.push({ t, resolve: resolve as (msg: GatewayToWorker) => void }),
    );
  }

  /** The next turn the gateway sends. */
  turn(): Promise<TurnMessage> {
    return this.next("turn");
  }

  event(turn: TurnMessage, event: AgentEvent): void {
    this.send({ t: "event", sandboxId: this.id, turnId: turn.turnId, event });
  }

  answer(turn: TurnMessage, text: string): void {
    this.send({ t: "turn_end", sandboxId: this.id, turnId: turn.turnId, status: "done", text });
  }

  fail(turn: TurnMessage, code: TurnErrorCode, message: string): void {
    this.send({
      t: "turn_end",
      sandboxId: this.id,
      turnId: turn.turnId,
      status: "error",
      text: "",
      error: { code, message },
    });
  }

  /** The worker's process ends (or, with "evicted", its pool died of a neighbour). */
  exit(reason: string): void {
    this.#gone = true;
    this.#exit({ code: reason === "stopped" ? 0 : 1, signal: null, reason });
  }

  #receive(msg: GatewayToWorker): void {
    this.received.push(msg);
    const i = this.#waiters.findIndex((w) => w.t === msg.t);
    if (i === -1) return;
    const [waiter] = this.#waiters.splice(i, 1);
    waiter!.resolve(msg);
  }
}

/** A sandbox driver whose sandboxes are LinkedWorkers. */
export class LinkedDriver implements SandboxDriver {
  readonly name = "host" as const;
  /** Every worker started, in order. */
  readonly started: LinkedWorker[] = [];
  readonly #running = new Map<string, LinkedWorker>();
  readonly #waiters = new Set<() => void>();

  async probe(): Promise<DriverProbe> {
    return { driver: "linked", isolated: false, ok: true, details: [] };
  }

  async start(spec: { id: string }): Promise<SandboxInstance> {
    const worker = new LinkedWorker(spec.id);
    this.started.push(worker);
    this.#running.set(spec.id, worker);
    worker.instance.exited.then(() => {
      if (this.#running.get(spec.id) === worker) this.#running.delete(spec.id);
    });
    for (const wake of [...this.#waiters]) wake();
    return worker.instance;
  }

  /** The running worker of `id`, once it has started. */
  async worker(id: string): Promise<LinkedWorker> {
    for (;;) {
      const worker = this.#running.get(id);
      if (worker) return worker;
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#waiters.delete(wake);
          resolve();
        };
        this.#waiters.add(wake);
      });
    }
  }

  async stop(id: string, opts: { reason?: string } = {}): Promise<void> {
    this.#running.get(id)?.exit(opts.reason ?? "stopped");
  }

  async close(): Promise<void> {
    for (const worker of this.#running.values()) worker.exit("stopped");
  }
}

/** Count the reactions (`then` calls) put on `promise` from now on. */
export function countReactions(promise: Promise<unknown>): { readonly count: number } {
  const then = promise.then.bind(promise);
  const seen = { count: 0 };
  // biome-ignore lint/suspicious/noThenProperty: it stays the promise's own `then`, counted
  Object.defineProperty(promise, "then", {
    value: (...args: Parameters<typeof then>) => {
      seen.count++;
      return then(...args);
    },
  });
  return seen;
}
