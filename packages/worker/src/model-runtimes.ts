import { InMemoryCredentialStore } from "@earendil-works/pi-ai";
import { ModelRuntime } from "@earendil-works/pi-coding-agent";

/**
 * A new pi model runtime for a session that is being built, with its own
 * in-memory credential store (the turn's key goes in there; see SandboxSession).
 */
export interface ModelRuntimeSource {
  take(): Promise<{ runtime: ModelRuntime; credentials: InMemoryCredentialStore }>;
  dispose(): void;
}

async function create(): Promise<{ runtime: ModelRuntime; credentials: InMemoryCredentialStore }> {
  const credentials = new InMemoryCredentialStore();
  const runtime = await ModelRuntime.create({ credentials, modelsPath: null });
  return { runtime, credentials };
}

/** One runtime per call, made on the spot (single mode: one session per process). */
export const freshModelRuntimes: ModelRuntimeSource = { take: create, dispose() {} };

/**
 * Pool mode: keeps one runtime made ahead, so waking a session does not wait for
 * pi to build its provider catalogue (a few ms of a cold wake, see
 * docs/performance.md). Each runtime, and its credential store, goes to exactly
 * one session; a wake that finds no spare makes its own, and the spare is made
 * again a little later, off the path of the turn that took it.
 */
export class SpareModelRuntimes implements ModelRuntimeSource {
  #spare: ReturnType<typeof create> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #disposed = false;
  readonly #refillMs: number;

  constructor(refillMs = 100) {
    this.#refillMs = refillMs;
    this.#refill();
  }

  take(): ReturnType<typeof create> {
    const spare = this.#spare;
    this.#spare = undefined;
    this.#schedule();
    // A spare that failed to build is dropped; this wake builds its own.
    return spare ? spare.catch(() => create()) : create();
  }

  #schedule(): void {
    if (this.#disposed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#refill();
    }, this.#refillMs);
    this.#timer.unref();
  }

  #refill(): void {
    if (this.#disposed || this.#spare) return;
    const spare = create();
    // Its failure is seen by whoever takes it (and then builds its own).
    spare.catch(() => {});
    this.#spare = spare;
  }

  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#timer);
    this.#spare = undefined;
  }
}
