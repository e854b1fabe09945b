import type { PlaceholderLookup, SwapLocation } from "../secrets/placeholders.ts";
import type { SecretRef } from "../secrets/store.ts";
import { matchesPattern } from "./domains.ts";
import type { Replace } from "./rewrite.ts";

/** Where the proxy reads real values from (a SecretStore in the gateway). */
export interface SecretSource {
  get(ref: SecretRef): Promise<string | null>;
}

const MAX_PLACEHOLDERS_PER_REQUEST = 32;

/** How a secret is written into a given part of a request. */
export type Encoder = (value: string) => string | null;

/** Header values: as is, but never with characters that would split the header. */
export const headerEncoder: Encoder = (v) => (/[\r\n\0]/.test(v) ? null : v);
export const urlEncoder: Encoder = (v) => encodeURIComponent(v);
const jsonEncoder: Encoder = (v) => JSON.stringify(v).slice(1, -1);
const rawEncoder: Encoder = (v) => v;

const RAW_TEXT = new Set([
  "application/xml",
  "application/graphql",
  "application/javascript",
  "application/yaml",
  "application/x-yaml",
  "application/toml",
  "multipart/form-data",
]);

/**
 * Encoder for a request body, or null when the body is not text we may rewrite
 * (binary, or compressed: a placeholder in there is invisible and stays as is).
 */
export function bodyEncoder(
  contentType: string | undefined,
  contentEncoding: string | undefined,
): Encoder | null {
  if (contentEncoding && contentEncoding.trim().toLowerCase() !== "identity") return null;
  const ct = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (ct === "") return rawEncoder;
  if (
    ct === "application/json" ||
    ct.endsWith("+json") ||
    ct === "application/x-ndjson" ||
    ct === "application/jsonl"
  ) {
    return jsonEncoder;
  }
  if (ct === "application/x-www-form-urlencoded") return urlEncoder;
  if (ct.startsWith("text/") || ct.endsWith("+xml") || RAW_TEXT.has(ct)) return rawEncoder;
  return null;
}

/**
 * Placeholder → secret decisions for one request. A placeholder is swapped only
 * when it was issued to this sandbox, its binding allows this host and this part
 * of the request, and the secret still exists; otherwise it travels unchanged.
 */
export class RequestSwapper {
  /** Placeholder → value and secret name, for everything swapped so far. */
  readonly swapped = new Map<string, { value: string; name: string }>();
  readonly #unswapped = new Set<string>();
  readonly #sandboxId: string;
  readonly #host: string;
  readonly #placeholders: PlaceholderLookup;
  readonly #secrets: SecretSource;
  readonly #enabled: boolean;
  readonly #values = new Map<
    string,
    Promise<{ value: string; name: string; locations: SwapLocation[] } | null>
  >();

  constructor(opts: {
    sandboxId: string;
    /** Canonical host the request goes to. */
    host: string;
    placeholders: PlaceholderLookup;
    secrets: SecretSource;
    /** False: nothing may be swapped into this request (e.g. cleartext to the internet). */
    enabled?: boolean;
  }) {
    this.#enabled = opts.enabled ?? true;
    this.#sandboxId = opts.sandboxId;
    this.#host = opts.host;
    this.#placeholders = opts.placeholders;
    this.#secrets = opts.secrets;
  }

  /** Placeholders seen but left alone (never swapped anywhere in this request). */
  get unswappedCount(): number {
    let n = 0;
    for (const p of this.#unswapped) if (!this.swapped.has(p)) n++;
    return n;
  }

  get secretNames(): string[] {
    return [...new Set([...this.swapped.values()].map((s) => s.name))].sort();
  }

  #resolve(placeholder: string) {
    let p = this.#values.get(placeholder);
    if (!p) {
      // A request stuffed with made-up placeholders must not turn into a lookup storm.
      if (!this.#enabled || this.#values.size >= MAX_PLACEHOLDERS_PER_REQUEST)
        return Promise.resolve(null);
      p = (async () => {
        const binding = await this.#placeholders.lookup(placeholder);
        if (!binding || binding.sandboxId !== this.#sandboxId) return null;
        if (!binding.hosts.some((h) => matchesPattern(this.#host, h))) return null;
        const value = await this.#secrets.get(binding.secret);
        return value === null
          ? null
          : { value, name: binding.secret.name, locations: binding.locations };
      })();
      this.#values.set(placeholder, p);
    }
    return p;
  }

  replacer(location: SwapLocation, encode: Encoder): Replace {
    return async (placeholder) => {
      const found = await this.#resolve(placeholder);
      const encoded = found?.locations.includes(location) ? encode(found.value) : null;
      if (!found || encoded === null) {
        this.#unswapped.add(placeholder);
        return null;
      }
      this.swapped.set(placeholder, { value: found.value, name: found.name });
      return encoded;
    };
  }

  /**
   * Secrets that a streamed body might receive (bound to this host for `body`):
   * known before the body is read, so the response can be redacted for them.
   */
  async bodyCandidates(): Promise<{ placeholder: string; value: string }[]> {
    if (!this.#enabled) return [];
    const out: { placeholder: string; value: string }[] = [];
    for (const b of await this.#placeholders.forSandbox(this.#sandboxId)) {
      if (!b.locations.includes("body")) continue;
      if (!b.hosts.some((h) => matchesPattern(this.#host, h))) continue;
      const value = await this.#secrets.get(b.secret);
      if (value !== null) out.push({ placeholder: b.placeholder, value });
    }
    return out;
  }
}
