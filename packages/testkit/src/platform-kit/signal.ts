export interface WaitOptions {
  /** Give up after this long (default 10 s). A safety net, not an assertion. */
  timeoutMs?: number;
  /** Named in the timeout error to say what was being waited for. */
  description?: string;
}

/**
 * Lets tests await a condition on emulator state without polling: the emulator
 * calls notify() whenever it records something and waiting predicates re-run.
 */
export class ChangeSignal {
  readonly #listeners = new Set<() => void>();

  notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  waitFor<T>(check: () => T | undefined | null | false, opts: WaitOptions = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        this.#listeners.delete(listener);
        if (timer) clearTimeout(timer);
      };
      const listener = () => {
        let value: T | undefined | null | false;
        try {
          value = check();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (value !== undefined && value !== null && value !== false) {
          done();
          resolve(value);
        }
      };
      this.#listeners.add(listener);
      timer = setTimeout(() => {
        done();
        const what = opts.description ? ` for ${opts.description}` : "";
        reject(new Error(`waitFor${what} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      listener();
    });
  }
}
