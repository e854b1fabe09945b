import { InMemoryCredentialStore } from "@earendil-works/pi-ai";
import { ModelRuntime } from "@earendil-works/pi-coding-agent";
import { type ModelRegistration, type PiModel, registerModel } from "./model.ts";

/** What a session's model is registered with: the agent's model, nothing of a sandbox or turn. */
export type SharedRegistration = Omit<ModelRegistration, "apiKey" | "headers" | "modelHeaders">;

/** A pi model runtime for one session, its model registered. */
export interface SessionModel {
  runtime: ModelRuntime;
  /** The runtime's own credential store: the turn's key goes here (pi reads it per request). */
  credentials: InMemoryCredentialStore;
  model: PiModel;
  /**
   * The model entry's headers, read by pi on every request: the session puts its
   * sandbox's name and each turn's trace context here.
   */
  headers: Record<string, string>;
}

export interface ModelRuntimeSource {
  take(registration: SharedRegistration): Promise<SessionModel>;
  dispose(): void;
}

/**
 * The key pi is registered with. Never used: the turn's key is in the credential
 * store, which pi prefers. It is not a real key so that a runtime made ahead
 * (below) carries nothing of the session it was registered for.
 */
const NO_KEY = "lobu-key-comes-per-turn";

const keyOf = (r: SharedRegistration): string =>
  JSON.stringify([
    r.providerId,
    r.baseUrl,
    r.api,
    r.id,
    r.contextWindow,
    r.maxTokens,
    r.images,
    r.compat,
  ]);

async function create(): Promise<Omit<SessionModel, "model" | "headers">> {
  const credentials = new InMemoryCredentialStore();
  const runtime = await ModelRuntime.create({ credentials, modelsPath: null });
  return { runtime, credentials };
}

function register(
  made: Omit<SessionModel, "model" | "headers">,
  registration: SharedRegistration,
): SessionModel {
  const headers: Record<string, string> = {};
  const model = registerModel(made.runtime, {
    ...registration,
    apiKey: NO_KEY,
    modelHeaders: headers,
  });
  return { ...made, model, headers };
}

/** One runtime per call, made on the spot (single mode: one session per process). */
export const freshModelRuntimes: ModelRuntimeSource = {
  take: async (registration) => register(await create(), registration),
  dispose() {},
};

interface Spare {
  made: Promise<Omit<SessionModel, "model" | "headers">>;
  /** Registered ahead with the last model asked for: pi's refresh after it is already done. */
  registered?: { key: string; model: SessionModel };
}

/**
 * Pool mode: keeps one runtime made ahead, and registers the model the last wake
 * asked for on it, so waking a session waits neither for pi to build its provider
 * catalogue nor for the refresh of every provider pi runs after a registration
 * (together a few ms of a cold wake, see docs/performance.md). Each runtime, its
 * credential store and its headers go to exactly one session; a wake that finds no
 * spare makes its own, and the spare is made again a little later, off the path of
 * the turn that took it.
 */
export class SpareModelRuntimes implements ModelRuntimeSource {
  #spare: Spare | undefined;
  #last: SharedRegistration | undefined;
  #timer: NodeJS.Timeout | undefined;
  #disposed = false;
  readonly #refillMs: number;

  constructor(refillMs = 10) {
    this.#refillMs = refillMs;
    this.#refill();
  }

  async take(registration: SharedRegistration): Promise<SessionModel> {
    const spare = this.#spare;
    this.#spare = undefined;
    this.#last = registration;
    this.#schedule();
    const key = keyOf(registration);
    if (spare?.registered?.key === key) return spare.registered.model;
    // A spare that failed to build is dropped; this wake builds its own.
    const made = spare ? await spare.made.catch(() => create()) : await create();
    return register(made, registration);
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
    const last = this.#last;
    const spare: Spare = { made: create() };
    this.#spare = spare;
    spare.made.then(
      (made) => {
        // Only if it is still the spare: once taken, it is its session's alone.
        if (last && this.#spare === spare)
          spare.registered = { key: keyOf(last), model: register(made, last) };
      },
      // Its failure is seen by whoever takes it (and then builds its own).
      () => {},
    );
  }

  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#timer);
    this.#spare = undefined;
  }
}
