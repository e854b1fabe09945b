import { Transform, type TransformCallback } from "node:stream";
import { PLACEHOLDER_PATTERN, PLACEHOLDER_PREFIX } from "@lobu/core";
import { type EchoKind, echoForms, echoPairsOf } from "./echo-forms.ts";

/**
 * Text rewriting for the egress proxy: placeholders → secrets in requests, secrets
 * → placeholders in responses. Streams work on latin1 strings (one char per byte,
 * so binary stays intact) and hold back only a tail that could still become a
 * match, so a value split across chunks is caught while ordinary chunks (an SSE
 * event ending in "\n\n") flow through at once.
 */

export const PLACEHOLDER_LENGTH = PLACEHOLDER_PREFIX.length + 36;
const HEXISH = /^[0-9a-f-]*$/;

/** Replacement for a placeholder, or null to leave it as it is. */
export type Replace = (placeholder: string) => Promise<string | null>;

function isPlaceholderPrefix(t: string): boolean {
  if (t.length >= PLACEHOLDER_LENGTH) return false;
  if (t.length <= PLACEHOLDER_PREFIX.length) return PLACEHOLDER_PREFIX.startsWith(t);
  return t.startsWith(PLACEHOLDER_PREFIX) && HEXISH.test(t.slice(PLACEHOLDER_PREFIX.length));
}

/** Where the tail that may be the start of a placeholder begins (length when none). */
function placeholderTail(s: string): number {
  for (let i = Math.max(0, s.length - PLACEHOLDER_LENGTH + 1); i < s.length; i++) {
    if (s.charCodeAt(i) === 0x6c /* l */ && isPlaceholderPrefix(s.slice(i))) return i;
  }
  return s.length;
}

/** Replace every placeholder in `text` (each distinct one is looked up once). */
export async function replacePlaceholders(text: string, replace: Replace): Promise<string> {
  if (!text.includes(PLACEHOLDER_PREFIX)) return text;
  const found = text.match(PLACEHOLDER_PATTERN);
  if (!found) return text;
  const map = new Map<string, string | null>();
  for (const p of new Set(found)) map.set(p, await replace(p));
  return text.replace(PLACEHOLDER_PATTERN, (p) => map.get(p) ?? p);
}

const utf8ToLatin1 = (s: string): string => Buffer.from(s, "utf8").toString("latin1");

/**
 * `replace` for text held as latin1 (one char per byte: bodies, header values):
 * the secret it returns is UTF-8 text, so it is re-spelled byte by byte.
 */
export function latin1Replace(replace: Replace): Replace {
  return async (p) => {
    const r = await replace(p);
    return r === null ? null : utf8ToLatin1(r);
  };
}

/** Streaming placeholder swap for request bodies. `replace` returns UTF-8 text. */
export class PlaceholderSwapStream extends Transform {
  readonly #replace: Replace;
  #carry = "";

  constructor(replace: Replace) {
    super();
    this.#replace = latin1Replace(replace);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const s = this.#carry + chunk.toString("latin1");
    const cut = placeholderTail(s);
    this.#carry = s.slice(cut);
    replacePlaceholders(s.slice(0, cut), this.#replace).then(
      (out) => done(null, out ? Buffer.from(out, "latin1") : undefined),
      done,
    );
  }

  override _flush(done: TransformCallback): void {
    done(null, this.#carry ? Buffer.from(this.#carry, "latin1") : undefined);
  }
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * What finding some values takes, whatever they are replaced with: every echo
 * form of each (the needles, longest first), one regular expression, and the
 * needles' proper prefixes (a stream tail that may still become one).
 */
class Needles {
  /** Per value, in order: its echo forms. */
  readonly forms: Map<EchoKind, string>[];
  readonly list: string[];
  readonly pattern: RegExp;
  readonly firstChars: Set<number>;
  readonly prefixes = new Set<string>();
  readonly maxLength: number;

  constructor(values: string[]) {
    this.forms = values.map((v) => (v ? echoForms(v) : new Map()));
    const all = new Set<string>();
    for (const forms of this.forms) for (const form of forms.values()) all.add(utf8ToLatin1(form));
    this.list = [...all].sort((a, b) => b.length - a.length);
    this.pattern = new RegExp(this.list.map(escapeRegex).join("|") || "(?!)", "g");
    this.firstChars = new Set(this.list.map((n) => n.charCodeAt(0)));
    for (const n of this.list) for (let i = 1; i < n.length; i++) this.prefixes.add(n.slice(0, i));
    this.maxLength = Math.max(0, ...this.list.map((n) => n.length));
  }
}

/** Needles kept, by their exact values; the oldest goes first. */
const NEEDLES_KEPT = 256;
const needleSets = new Map<string, Needles>();

/**
 * The needles of `values`, derived once for the same values in the same order:
 * the relay redacts the same provider key on every model call, back to a
 * placeholder that is new each turn, so only the replacements differ. Kept in
 * memory only, as the decrypted values they are made of already are (read-memo.ts).
 */
function needlesOf(values: string[]): Needles {
  // JSON: no two lists of values share a key, whatever characters they hold.
  const key = JSON.stringify(values);
  const hit = needleSets.get(key);
  if (hit) return hit;
  const built = new Needles(values);
  if (needleSets.size >= NEEDLES_KEPT) needleSets.delete(needleSets.keys().next().value!);
  needleSets.set(key, built);
  return built;
}

/**
 * Replaces fixed strings (real secret values in every form they may be echoed
 * in, see echo-forms.ts) with the same form of their replacement (the
 * placeholder the agent sent), across chunk boundaries.
 */
export class LiteralRedactor {
  readonly #needles: Needles;
  readonly #replacement = new Map<string, string>();

  /** `pairs`: [value, replacement]; values are UTF-8 text. */
  constructor(pairs: Iterable<[string, string]>) {
    const list = [...pairs];
    this.#needles = needlesOf(list.map(([value]) => value));
    list.forEach(([value, replacement], i) => {
      if (!value) return;
      for (const [form, back] of echoPairsOf(this.#needles.forms[i]!, replacement)) {
        const needle = utf8ToLatin1(form);
        if (!this.#replacement.has(needle)) this.#replacement.set(needle, utf8ToLatin1(back));
      }
    });
  }

  /** Redact a complete latin1/ASCII string (header values). */
  redact(text: string): string {
    return this.#needles.list.length === 0
      ? text
      : text.replace(this.#needles.pattern, (m) => this.#replacement.get(m) ?? m);
  }

  /** Redact a complete body (latin1, so binary parts survive); the same buffer when nothing matched. */
  redactBytes(body: Buffer): Buffer {
    if (this.#needles.list.length === 0) return body;
    const text = body.toString("latin1");
    const out = this.redact(text);
    return out === text ? body : Buffer.from(out, "latin1");
  }

  /** Where, at or after `from`, the tail of `s` could still grow into a needle (length when nowhere). */
  #pendingFrom(s: string, from: number): number {
    const { maxLength, firstChars, prefixes } = this.#needles;
    for (let i = Math.max(from, s.length - maxLength + 1); i < s.length; i++) {
      if (firstChars.has(s.charCodeAt(i)) && prefixes.has(s.slice(i))) return i;
    }
    return s.length;
  }

  /**
   * Redact one chunk of a stream; returns [emit, carry]. A match is taken only
   * where no longer needle could still be completing: a long form (a whole Basic
   * credential) that is half received must not lose to a shorter form inside it.
   */
  step(s: string): [string, string] {
    let out = "";
    let last = 0;
    let pending = this.#pendingFrom(s, 0);
    // Shared by every redactor of these values: used from lastIndex 0 to the end, without an await.
    const { pattern } = this.#needles;
    pattern.lastIndex = 0;
    for (let m = pattern.exec(s); m && m.index < pending; m = pattern.exec(s)) {
      out += s.slice(last, m.index) + (this.#replacement.get(m[0]) ?? m[0]);
      last = m.index + m[0].length;
      if (pending < last) pending = this.#pendingFrom(s, last);
    }
    return [out + s.slice(last, pending), s.slice(pending)];
  }

  stream(): Transform {
    let carry = "";
    return new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        const [emit, rest] = this.step(carry + chunk.toString("latin1"));
        carry = rest;
        done(null, emit ? Buffer.from(emit, "latin1") : undefined);
      },
      // The stream ended: a held-back tail that is itself a whole needle (one
      // secret's form a prefix of another's) is redacted, not let through.
      flush: (done) => done(null, carry ? Buffer.from(this.redact(carry), "latin1") : undefined),
    });
  }
}

/** Redactors kept, by their exact pairs; the oldest goes first. */
const REDACTORS_KEPT = 256;
const redactors = new Map<string, LiteralRedactor>();

/**
 * The redactor for `pairs`, built once for the same pairs in the same order.
 * Building one derives every echo form of every value, their prefixes and a
 * regular expression; the relay needed one per model call (its key → the
 * turn's placeholder), for a result that only changes with the secrets. A
 * redactor holds no state between calls (each stream keeps its own tail), so
 * requests in flight share it. Kept in memory only, as the decrypted values
 * it is made of already are (read-memo.ts).
 */
export function literalRedactor(pairs: Iterable<[string, string]>): LiteralRedactor {
  const list = [...pairs];
  const key = JSON.stringify(list);
  const hit = redactors.get(key);
  if (hit) return hit;
  const built = new LiteralRedactor(list);
  if (redactors.size >= REDACTORS_KEPT) redactors.delete(redactors.keys().next().value!);
  redactors.set(key, built);
  return built;
}
