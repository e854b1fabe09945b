import { createHash } from "node:crypto";
import type { KeyValue } from "./port.ts";

/**
 * Single-use markers in the store, shared by every gateway on it: the first
 * caller to claim a key within its lifetime wins, every later one learns it
 * is a repeat. This is how a signed request (or a Mini App's initData) is
 * accepted once, however many gateways a copy of it reaches.
 *
 * Keys are stored as SHA-256 digests: proofs of any length become short keys,
 * and the store holds no signatures.
 */
export class OnceMarkers {
  readonly #kv: KeyValue;
  readonly #namespace: string;

  constructor(kv: KeyValue, namespace: string) {
    this.#kv = kv;
    this.#namespace = namespace;
  }

  /** True the first time `key` is claimed within `ttlMs`; false for every repeat. */
  claim(key: string, ttlMs: number): Promise<boolean> {
    return this.#kv.set(this.#key(key), String(Date.now()), {
      ttlMs: Math.max(1_000, Math.ceil(ttlMs)),
      ifNotExists: true,
    });
  }

  /** Forget a claim: handling failed, so the platform's redelivery must be accepted. */
  async release(key: string): Promise<void> {
    await this.#kv.del(this.#key(key));
  }

  #key(key: string): string {
    return `once:${this.#namespace}:${createHash("sha256").update(key).digest("hex")}`;
  }
}
