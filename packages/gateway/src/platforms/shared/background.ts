import type { Logger } from "pino";

/**
 * Work done after a webhook was acknowledged (platforms want an answer within
 * seconds): failures are logged, and stop() waits for what is still running.
 */
export class Background {
  readonly #log: Logger;
  readonly #running = new Set<Promise<unknown>>();

  constructor(log: Logger) {
    this.#log = log;
  }

  run(task: () => Promise<unknown>, failure: string): void {
    const p = task()
      .catch((err) => this.#log.warn({ err }, failure))
      .finally(() => this.#running.delete(p));
    this.#running.add(p);
  }

  async settle(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }
}
