/**
 * Answers of a platform's API kept briefly (profiles, channel info, group
 * members) so that every message does not cost a lookup: bounded in size
 * (oldest entries go first), each entry for `ttlMs`, and one lookup in
 * flight per key however many messages ask at once. A failed lookup is not
 * kept: the next message asks again.
 */
export class LookupCache<T> {
  readonly #entries = new Map<string, { value: T; at: number }>();
  readonly #pending = new Map<string, Promise<T>>();
  readonly #ttlMs: number;
  readonly #max: number;

  constructor(opts: { ttlMs: number; maxEntries: number }) {
    this.#ttlMs = opts.ttlMs;
    this.#max = opts.maxEntries;
  }

  async get(key: string, lookup: () => Promise<T>): Promise<T> {
    const hit = this.#entries.get(key);
    if (hit && Date.now() - hit.at < this.#ttlMs) return hit.value;
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const started = lookup()
      .then((value) => {
        this.#entries.delete(key);
        while (this.#entries.size >= this.#max) {
          const oldest = this.#entries.keys().next().value;
          if (oldest === undefined) break;
          this.#entries.delete(oldest);
        }
        this.#entries.set(key, { value, at: Date.now() });
        return value;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, started);
    return started;
  }

  get size(): number {
    return this.#entries.size;
  }
}
