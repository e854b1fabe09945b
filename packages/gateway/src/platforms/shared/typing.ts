import type { Logger } from "pino";

/**
 * A platform's "typing…" hint, repeated while the agent works: platforms
 * show it for a few seconds per request. A failed hint is only logged.
 */
export class TypingHint {
  readonly #everyMs: number;
  readonly #send: () => Promise<unknown>;
  readonly #log: Logger;
  readonly #failure: string;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: {
    everyMs: number;
    send: () => Promise<unknown>;
    log: Logger;
    failure: string;
  }) {
    this.#everyMs = opts.everyMs;
    this.#send = opts.send;
    this.#log = opts.log;
    this.#failure = opts.failure;
  }

  set(on: boolean): void {
    if (!on) {
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    if (this.#timer) return;
    const tick = () => {
      this.#send().catch((err) => this.#log.debug({ err }, this.#failure));
    };
    tick();
    this.#timer = setInterval(tick, this.#everyMs);
    this.#timer.unref();
  }
}
