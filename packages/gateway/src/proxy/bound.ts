import { matchesPattern } from "../domain/host-patterns.ts";
import {
  type PlaceholderBinding,
  type PlaceholderLookup,
  type SwapLocation,
  swappableByProxy,
} from "../secrets/placeholders.ts";
import { type LiteralRedactor, literalRedactor } from "./rewrite.ts";
import type { SecretSource } from "./swap.ts";

/**
 * The secrets a sandbox may send to a host, and a redactor for them. Every
 * response from such a host is redacted for all of them, not only for those
 * swapped into that request: otherwise a value the host stored earlier (a body
 * swap into a gist, a note, an issue) could simply be read back.
 *
 * Used for redaction only, so it is cached briefly (per sandbox, `ttlMs`):
 * staleness can only mean redacting a value a little longer than needed, or,
 * right after a rotation, not yet redacting the new value in a read-back (a
 * request that swaps a value always redacts it: the forwarder adds what it
 * swapped, and reads this fresh for streamed bodies). Swap decisions never use it.
 */

export interface BoundSecret {
  placeholder: string;
  value: string;
  locations: SwapLocation[];
}

export interface BoundSet {
  secrets: BoundSecret[];
  /** Null when nothing is bound to the host. */
  redactor: LiteralRedactor | null;
  /** Real value → its placeholder. */
  values: Map<string, string>;
}

const EMPTY: BoundSet = { secrets: [], redactor: null, values: new Map() };
const MAX_SANDBOXES = 10_000;

interface Entry {
  at: number;
  bindings: Promise<{ binding: PlaceholderBinding; value: string }[]>;
  hosts: Map<string, BoundSet>;
}

export class BoundSecrets {
  readonly #placeholders: PlaceholderLookup;
  readonly #secrets: SecretSource;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, Entry>();

  constructor(opts: {
    placeholders: PlaceholderLookup;
    secrets: SecretSource;
    ttlMs?: number;
    now?: () => number;
  }) {
    this.#placeholders = opts.placeholders;
    this.#secrets = opts.secrets;
    this.#ttlMs = opts.ttlMs ?? 1000;
    this.#now = opts.now ?? Date.now;
  }

  async #load(sandboxId: string): Promise<{ binding: PlaceholderBinding; value: string }[]> {
    const out: { binding: PlaceholderBinding; value: string }[] = [];
    for (const binding of await this.#placeholders.forSandbox(sandboxId)) {
      if (!swappableByProxy(binding)) continue;
      const value = await this.#secrets.get(binding.secret);
      if (value !== null) out.push({ binding, value });
    }
    return out;
  }

  #entry(sandboxId: string): Entry {
    const now = this.#now();
    const hit = this.#cache.get(sandboxId);
    if (hit && now - hit.at < this.#ttlMs) return hit;
    const entry: Entry = { at: now, bindings: this.#load(sandboxId), hosts: new Map() };
    entry.bindings.catch(() => this.#cache.delete(sandboxId));
    this.#cache.delete(sandboxId);
    this.#cache.set(sandboxId, entry);
    if (this.#cache.size > MAX_SANDBOXES) this.#cache.delete(this.#cache.keys().next().value!);
    return entry;
  }

  /**
   * What `sandboxId` may send to the canonical `host`. `fresh` skips the cache
   * (a streamed body is swapped as it flows, after the redactor is built).
   */
  async forHost(
    sandboxId: string,
    host: string,
    opts: { fresh?: boolean } = {},
  ): Promise<BoundSet> {
    if (opts.fresh) this.#cache.delete(sandboxId);
    const entry = this.#entry(sandboxId);
    const cached = entry.hosts.get(host);
    if (cached) return cached;
    const secrets: BoundSecret[] = [];
    for (const { binding, value } of await entry.bindings) {
      if (!binding.hosts.some((h) => matchesPattern(host, h))) continue;
      secrets.push({ placeholder: binding.placeholder, value, locations: binding.locations });
    }
    const values = new Map(secrets.map((s) => [s.value, s.placeholder]));
    const set: BoundSet = secrets.length
      ? { secrets, redactor: literalRedactor(values), values }
      : EMPTY;
    if (entry.hosts.size < 1000) entry.hosts.set(host, set);
    return set;
  }
}
