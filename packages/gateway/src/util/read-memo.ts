/**
 * A bounded memo of what a stored value decodes to, keyed by the key it was
 * read from and the exact stored text. The hot paths still read the store on
 * every use (so a change, a revocation or a deletion, by this gateway or any
 * other, shows at once), but skip the costly part when the text is the same as
 * last time: parsing and validating JSON, or decrypting (every write of a
 * secret seals it with a fresh nonce, so new text means a new value). Keying by
 * the store key as well means a value copied under another key is decoded (and
 * checked) anew, never answered from the memo of the original.
 */
export class ReadMemo<T> {
  readonly #max: number;
  readonly #entries = new Map<string, T>();

  constructor(max = 4096) {
    this.#max = max;
  }

  /** What `raw` read from `key` decodes to: memoized, or `decode(raw)` (memoized unless it throws). */
  get(key: string, raw: string, decode: (raw: string) => T): T {
    const id = `${key}\0${raw}`;
    const hit = this.#entries.get(id);
    if (hit !== undefined) return hit;
    const value = decode(raw);
    if (value === undefined) return value;
    // The oldest entry goes first: values of rotated secrets and revoked bindings age out.
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(id, value);
    return value;
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
