import { settled } from "@lobu/core/best-effort";

/**
 * Runs operations one at a time per key, in the order they were queued; a failed
 * operation does not stop the ones after it. Keys with nothing queued cost nothing.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.#tails.get(key) ?? Promise.resolve()).then(fn);
    const tail = settled(next);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }
}
