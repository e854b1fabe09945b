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
  /**
   * The session is done with its runtime (it let go of pi's state, or unloaded):
   * another session may get it next, with the key and headers cleared first.
   */
  give(model: SessionModel): void;
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
  give() {},
  dispose() {},
};

/** Runtimes given back and kept for the next session with the same model, per pool. */
const FREE_RUNTIMES = 64;
/** A given-back runtime nobody took for this long is let go (idle pools hold none). */
const FREE_RUNTIME_MS = 10_000;

interface FreeRuntime {
  model: SessionModel;
  givenAt: number;
  /** Its key's deletion (credential writes are queued): done before anyone gets it. */
  cleared: Promise<void>;
}

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
 *
 * Runtimes are also reused: a session that lets go of pi's state gives its
 * runtime back (its key deleted, its headers emptied), and the next session with
 * the same model takes it as it is. Making one costs ~8 ms of CPU and ~160 KB
 * (pi's catalogue of every provider), more than a whole turn; at most
 * FREE_RUNTIMES are kept, each for FREE_RUNTIME_MS, so idle pools hold none.
 */
export class SpareModelRuntimes implements ModelRuntimeSource {
  #spare: Spare | undefined;
  /** Given-back runtimes by registration key; at most FREE_RUNTIMES in all. */
  readonly #free = new Map<string, FreeRuntime[]>();
  #freeCount = 0;
  /** What each runtime handed out was registered with. */
  readonly #registered = new WeakMap<SessionModel, { key: string; providerId: string }>();
  #last: SharedRegistration | undefined;
  #timer: NodeJS.Timeout | undefined;
  #disposed = false;
  readonly #refillMs: number;

  #expiry: NodeJS.Timeout | undefined;

  constructor(refillMs = 10) {
    this.#refillMs = refillMs;
    this.#refill();
  }

  /** Given-back runtimes held now (for tests and diagnostics). */
  get free(): number {
    return this.#freeCount;
  }

  /** Let go of the runtimes given back more than `olderThanMs` ago. */
  expire(olderThanMs = FREE_RUNTIME_MS): void {
    const cutoff = Date.now() - olderThanMs;
    for (const [key, list] of this.#free) {
      // In place: a failed deletion takes its entry out of this same array (give).
      const before = list.length;
      for (let i = list.length - 1; i >= 0; i--) if (list[i]!.givenAt <= cutoff) list.splice(i, 1);
      this.#freeCount -= before - list.length;
      if (!list.length) this.#free.delete(key);
    }
    if (this.#freeCount === 0) {
      clearInterval(this.#expiry);
      this.#expiry = undefined;
    }
  }

  async take(registration: SharedRegistration): Promise<SessionModel> {
    const key = keyOf(registration);
    const reused = this.#free.get(key)?.pop();
    if (reused) {
      this.#freeCount--;
      const cleared = await reused.cleared.then(
        () => true,
        () => false,
      );
      if (cleared) return this.#handOut(reused.model, key, registration);
    }
    const spare = this.#spare;
    this.#spare = undefined;
    this.#last = registration;
    this.#schedule();
    if (spare?.registered?.key === key)
      return this.#handOut(spare.registered.model, key, registration);
    // A spare that failed to build is dropped; this wake builds its own.
    const made = spare ? await spare.made.catch(() => create()) : await create();
    return this.#handOut(register(made, registration), key, registration);
  }

  #handOut(model: SessionModel, key: string, registration: SharedRegistration): SessionModel {
    this.#registered.set(model, { key, providerId: registration.providerId });
    return model;
  }

  give(model: SessionModel): void {
    const registered = this.#registered.get(model);
    this.#registered.delete(model);
    if (!registered || this.#disposed || this.#freeCount >= FREE_RUNTIMES) return;
    // Nothing of the last session goes with it: not its key, name or trace context.
    for (const name of Object.keys(model.headers)) delete model.headers[name];
    // A deletion that fails leaves the runtime out: it is never handed on with a key.
    const cleared = model.credentials.delete(registered.providerId);
    const list = this.#free.get(registered.key) ?? [];
    const entry: FreeRuntime = { model, givenAt: Date.now(), cleared };
    cleared.catch(() => {
      const i = list.indexOf(entry);
      if (i >= 0) {
        list.splice(i, 1);
        this.#freeCount--;
      }
    });
    list.push(entry);
    this.#free.set(registered.key, list);
    this.#freeCount++;
    if (!this.#expiry) {
      this.#expiry = setInterval(() => this.expire(), FREE_RUNTIME_MS / 2);
      this.#expiry.unref();
    }
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
    // Emptied, not only dropped: a deletion failing later then finds nothing to count.
    for (const list of this.#free.values()) list.length = 0;
    this.#free.clear();
    this.#freeCount = 0;
    clearInterval(this.#expiry);
  }
}
