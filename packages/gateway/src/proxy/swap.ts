import { matchesPattern } from "../domain/host-patterns.ts";
import {
  type PlaceholderLookup,
  type SwapLocation,
  swappableByProxy,
} from "../secrets/placeholders.ts";
import type { SecretRef } from "../secrets/store.ts";
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

type Resolved =
  | { ok: true; value: string; name: string; locations: SwapLocation[] }
  | { ok: false; why: string };

/**
 * Placeholder → secret decisions for one request. A placeholder is swapped only
 * when it was issued to this sandbox for the proxy, its binding allows this host
 * and this part of the request, and the secret still exists; otherwise it travels
 * unchanged, and `notes` say why (for the audit log: secret names, never values
 * or placeholders).
 */
export class RequestSwapper {
  /** Placeholder → value and secret name, for everything swapped so far. */
  readonly swapped = new Map<string, { value: string; name: string }>();
  /**
   * Text the proxy produced around swapped values (a re-encoded Basic
   * credential) → what the sandbox sent there: the answer is redacted for these
   * too, since the host may echo them as it received them.
   */
  readonly produced = new Map<string, string>();
  readonly #unswapped = new Map<string, string>();
  readonly #sandboxId: string;
  readonly #host: string;
  readonly #placeholders: PlaceholderLookup;
  readonly #secrets: SecretSource;
  readonly #enabled: boolean;
  readonly #values = new Map<string, Promise<Resolved>>();

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
    for (const p of this.#unswapped.keys()) if (!this.swapped.has(p)) n++;
    return n;
  }

  /** Why placeholders were left alone, one note per distinct reason. */
  get notes(): string[] {
    const out = new Set<string>();
    for (const [p, why] of this.#unswapped) if (!this.swapped.has(p)) out.add(why);
    return [...out].sort();
  }

  get secretNames(): string[] {
    return [...new Set([...this.swapped.values()].map((s) => s.name))].sort();
  }

  #resolve(placeholder: string): Promise<Resolved> {
    let p = this.#values.get(placeholder);
    if (!p) {
      if (!this.#enabled) {
        return Promise.resolve({ ok: false, why: "secrets are not sent over cleartext HTTP" });
      }
      // A request stuffed with made-up placeholders must not turn into a lookup storm.
      if (this.#values.size >= MAX_PLACEHOLDERS_PER_REQUEST) {
        return Promise.resolve({
          ok: false,
          why: `more than ${MAX_PLACEHOLDERS_PER_REQUEST} placeholders in one request`,
        });
      }
      p = (async (): Promise<Resolved> => {
        const binding = await this.#placeholders.lookup(placeholder);
        if (!binding) return { ok: false, why: "unknown or revoked placeholder" };
        if (binding.sandboxId !== this.#sandboxId) {
          return { ok: false, why: "placeholder issued to another sandbox" };
        }
        const name = binding.secret.name;
        if (!swappableByProxy(binding)) {
          return { ok: false, why: `secret ${name} is only usable through the LLM relay` };
        }
        if (!binding.hosts.some((h) => matchesPattern(this.#host, h))) {
          return { ok: false, why: `secret ${name} is not bound to ${this.#host}` };
        }
        const value = await this.#secrets.get(binding.secret);
        if (value === null) return { ok: false, why: `secret ${name} no longer exists` };
        return { ok: true, value, name, locations: binding.locations };
      })();
      this.#values.set(placeholder, p);
    }
    return p;
  }

  replacer(location: SwapLocation, encode: Encoder): Replace {
    return async (placeholder) => {
      const found = await this.#resolve(placeholder);
      if (!found.ok) {
        this.#unswapped.set(placeholder, found.why);
        return null;
      }
      if (!found.locations.includes(location)) {
        this.#unswapped.set(
          placeholder,
          `secret ${found.name} may not be sent in the ${location === "url" ? "URL" : location}`,
        );
        return null;
      }
      const encoded = encode(found.value);
      if (encoded === null) {
        this.#unswapped.set(
          placeholder,
          `secret ${found.name} cannot be written into a ${location}`,
        );
        return null;
      }
      this.swapped.set(placeholder, { value: found.value, name: found.name });
      return encoded;
    };
  }
}
