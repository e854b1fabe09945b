import { randomBytes } from "node:crypto";
import { LobuError, newId } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { type AccountOf, ownAccount } from "../domain/accounts.ts";
import type { Person, PersonDataKind } from "../domain/person-data.ts";
import { open, type SealKey, seal, toKeyObject } from "../secrets/crypto.ts";
import type { SecretRef, SecretStore } from "../secrets/store.ts";
import type { KeyValue } from "../store/port.ts";
import { decodeRecord, logUnreadable, readRecord } from "../util/stored-record.ts";

/**
 * A person's long-term memory for one agent: short facts and preferences the
 * agent keeps (`remember`) and finds again (`recall`) in any of the person's
 * conversations with that agent. It is keyed by agent and person, never by
 * channel, so it follows the person across channels and platforms of one
 * identity, and nobody else's turn ever reads it (a shared per-channel sandbox
 * reads the memory of the turn's sender).
 *
 * The whole memory of one person is one record, sealed with AES-256-GCM under
 * a memory key that is itself a secret of the secret store (so master-key
 * rotation re-encrypts it, and every memory record stays readable); the AAD
 * names the agent and the person, so a record copied under another person's
 * key does not open. One record keeps the count limit exact under concurrent
 * writers (`kv.update`).
 */

export const MemoryEntry = z.object({
  id: z.string(),
  text: z.string(),
  createdAt: z.number(),
  updatedAt: z.number(),
  /** Where it was saved (shown to the person on the settings page). */
  source: z.object({ platform: z.string(), channelId: z.string() }).optional(),
});
export type MemoryEntry = z.infer<typeof MemoryEntry>;

const Entries = z.array(MemoryEntry);

/** The record under the person's key: the sealed entries. */
const StoredMemory = z.object({ v: z.literal(1), data: z.string(), updatedAt: z.number() });

/** The memory key: an installation secret (see the class comment). */
export const MEMORY_KEY_SECRET: SecretRef = {
  scope: { kind: "installation" },
  name: "lobu.memory-key",
};

const MAX_QUERY_CHARS = 500;
/** Most entries one recall returns. */
export const MAX_RECALL = 20;

export interface MemoryLimits {
  maxEntries: number;
  maxEntryChars: number;
}

function memoryKey(agentId: string, userKey: string): string {
  // userKey contains ':'; encoding keeps the keys of different people disjoint.
  return `memory:${agentId}:${encodeURIComponent(userKey)}`;
}

function aadFor(agentId: string, userKey: string): string {
  return JSON.stringify(["lobu-memory/v1", agentId, userKey]);
}

export function invalidMemory(message: string, hint?: string): LobuError {
  return new LobuError("invalid_memory", message, { status: 400, ...(hint ? { hint } : {}) });
}

export class MemoryStore {
  readonly #kv: KeyValue;
  readonly #secrets: Pick<SecretStore, "ensure">;
  readonly #log: Logger;
  readonly limits: MemoryLimits;
  readonly #now: () => number;
  readonly #accountOf: AccountOf;
  #key: Promise<SealKey> | undefined;

  constructor(deps: {
    kv: KeyValue;
    secrets: Pick<SecretStore, "ensure">;
    log: Logger;
    limits: MemoryLimits;
    now?: () => number;
    /** Identity → account: linked identities share their memory (docs/identity.md). */
    accountOf?: AccountOf;
  }) {
    this.#accountOf = deps.accountOf ?? ownAccount;
    this.#kv = deps.kv;
    this.#secrets = deps.secrets;
    this.#log = deps.log;
    this.limits = deps.limits;
    this.#now = deps.now ?? Date.now;
  }

  /** The person's entries, newest first. */
  async list(agentId: string, identity: string): Promise<MemoryEntry[]> {
    const userKey = await this.#accountOf(identity);
    const key = memoryKey(agentId, userKey);
    const raw = await this.#kv.get(key);
    const entries =
      raw === null ? [] : this.#open(await this.#sealKey(), key, agentId, userKey, raw);
    return entries.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  /** The person's memory with every agent, for their export and erasure (docs/retention.md). */
  personData(): PersonDataKind {
    const keysOf = async (p: Person): Promise<{ key: string; agentId: string }[]> => {
      const suffix = `:${encodeURIComponent(p.userKey)}`;
      const out: { key: string; agentId: string }[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await this.#kv.list("memory:", { limit: 500, ...(after ? { after } : {}) });
        for (const { key } of page)
          if (key.endsWith(suffix)) out.push({ key, agentId: key.slice(7, -suffix.length) });
        if (page.length < 500) return out;
        after = page[page.length - 1]!.key;
      }
    };
    return {
      name: "memory",
      export: async (p) =>
        Object.fromEntries(
          await Promise.all(
            (await keysOf(p)).map(async ({ agentId }) => [
              agentId,
              await this.list(agentId, p.userKey),
            ]),
          ),
        ),
      erase: async (p) => {
        let memories = 0;
        for (const { key } of await keysOf(p)) if (await this.#kv.del(key)) memories++;
        return { memories };
      },
    };
  }

  /** Save a fact; the same text saved again only refreshes the entry. */
  async add(
    agentId: string,
    userKey: string,
    text: string,
    source?: MemoryEntry["source"],
  ): Promise<MemoryEntry> {
    const clean = this.#checkText(text);
    let saved!: MemoryEntry;
    await this.#change(agentId, userKey, (entries) => {
      const now = this.#now();
      const same = entries.find((e) => e.text.toLowerCase() === clean.toLowerCase());
      if (same) {
        saved = { ...same, updatedAt: now };
        return entries.map((e) => (e.id === same.id ? saved : e));
      }
      if (entries.length >= this.limits.maxEntries)
        throw new LobuError(
          "memory_full",
          `the memory holds ${this.limits.maxEntries} entries, its limit`,
          {
            status: 409,
            hint: "Forget entries that are no longer needed first (the person can also delete them on their settings page).",
          },
        );
      saved = {
        id: newId("mem"),
        text: clean,
        createdAt: now,
        updatedAt: now,
        ...(source ? { source } : {}),
      };
      return [...entries, saved];
    });
    return saved;
  }

  /** Replace an entry's text; null when the person has no such entry. */
  async edit(
    agentId: string,
    userKey: string,
    id: string,
    text: string,
  ): Promise<MemoryEntry | null> {
    const clean = this.#checkText(text);
    let edited: MemoryEntry | null = null;
    await this.#change(agentId, userKey, (entries) => {
      const found = entries.find((e) => e.id === id);
      edited = found ? { ...found, text: clean, updatedAt: this.#now() } : null;
      return edited ? entries.map((e) => (e.id === id ? (edited as MemoryEntry) : e)) : undefined;
    });
    return edited;
  }

  /** Delete an entry; false when the person has no such entry. */
  async remove(agentId: string, userKey: string, id: string): Promise<boolean> {
    let removed = false;
    await this.#change(agentId, userKey, (entries) => {
      removed = entries.some((e) => e.id === id);
      return removed ? entries.filter((e) => e.id !== id) : undefined;
    });
    return removed;
  }

  /**
   * Entries matching the query's words, best first: a whole word counts
   * twice a part of one, ties go to the newest. An empty query gives the
   * newest entries.
   */
  async search(
    agentId: string,
    userKey: string,
    query: string,
    limit = 10,
  ): Promise<MemoryEntry[]> {
    const entries = await this.list(agentId, userKey);
    const n = Math.max(1, Math.min(limit, MAX_RECALL));
    const terms = [...new Set(wordsOf(query.slice(0, MAX_QUERY_CHARS)))];
    if (terms.length === 0) return entries.slice(0, n);
    return entries
      .map((entry) => ({ entry, score: scoreOf(entry.text, terms) }))
      .filter((s) => s.score > 0)
      .sort((a, b) => b.score - a.score || b.entry.updatedAt - a.entry.updatedAt)
      .slice(0, n)
      .map((s) => s.entry);
  }

  #checkText(text: string): string {
    const clean = text.trim().replace(/\s+/g, " ");
    if (!clean) throw invalidMemory("a memory needs some text");
    if ([...clean].length > this.limits.maxEntryChars)
      throw invalidMemory(
        `a memory is at most ${this.limits.maxEntryChars} characters (this one has ${[...clean].length})`,
        "Save one short fact or preference per entry.",
      );
    return clean;
  }

  /** Read-modify-write the person's entries; `fn` returns the new list, or undefined to keep them. */
  async #change(
    agentId: string,
    identity: string,
    fn: (entries: MemoryEntry[]) => MemoryEntry[] | undefined,
  ): Promise<void> {
    const userKey = await this.#accountOf(identity);
    const sealKey = await this.#sealKey();
    const key = memoryKey(agentId, userKey);
    const aad = aadFor(agentId, userKey);
    await this.#kv.update(key, (raw) => {
      const current = raw === null ? [] : this.#open(sealKey, key, agentId, userKey, raw);
      const next = fn(current);
      if (next === undefined) return undefined;
      const record: z.infer<typeof StoredMemory> = {
        v: 1,
        data: seal(sealKey, JSON.stringify(next), aad),
        updatedAt: this.#now(),
      };
      return JSON.stringify(record);
    });
  }

  /** The entries sealed in `raw`; none (logged) when it is unreadable: the next change replaces it. */
  #open(
    sealKey: SealKey,
    key: string,
    agentId: string,
    userKey: string,
    raw: string,
  ): MemoryEntry[] {
    const what = "it reads as empty until the next change replaces it";
    const record = readRecord(StoredMemory, raw, { record: "memory", key }, this.#log, what);
    if (!record) return [];
    let plain: string;
    try {
      plain = open(sealKey, record.data, aadFor(agentId, userKey));
    } catch (err) {
      logUnreadable(this.#log, { record: "memory", key }, (err as Error).message, what);
      return [];
    }
    const decoded = decodeRecord(Entries, plain);
    if (decoded.ok) return decoded.record;
    logUnreadable(this.#log, { record: "memory", key }, decoded.reason, what);
    return [];
  }

  #sealKey(): Promise<SealKey> {
    this.#key ??= this.#secrets
      .ensure(MEMORY_KEY_SECRET, () => randomBytes(32).toString("base64"))
      .then((value) => toKeyObject(Buffer.from(value, "base64")))
      .catch((err: unknown) => {
        this.#key = undefined;
        throw err;
      });
    return this.#key;
  }
}

function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

function scoreOf(text: string, terms: string[]): number {
  const words = new Set(wordsOf(text));
  const lower = text.toLowerCase();
  let score = 0;
  for (const t of terms) {
    if (words.has(t)) score += 2;
    else if (lower.includes(t)) score += 1;
  }
  return score;
}
