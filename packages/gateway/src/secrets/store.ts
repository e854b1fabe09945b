import { createLogger, holdSecrets, isLobuError, LobuError, releaseSecrets } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { type AccountOf, ownAccount } from "../domain/accounts.ts";
import type { KeyValue } from "../store/port.ts";
import { cacheReads } from "../store/read-cache.ts";
import { ReadMemo } from "../util/read-memo.ts";
import { decodeRecord, logUnreadable, readRecord } from "../util/stored-record.ts";
import { DecryptError, open, type SealKey, seal, toKeyObject } from "./crypto.ts";

/**
 * Encrypted secrets (API keys, OAuth tokens) in the store's KeyValue. Each value is
 * sealed with AES-256-GCM under the master key; the AAD names the scope and the
 * secret, so a ciphertext copied under another key (another agent, another user)
 * fails to decrypt instead of leaking across tenants.
 *
 * A stored record that does not read back as one (corrupt, or from an
 * incompatible version) is as unusable as one that fails to decrypt: reading
 * its value throws `secret_undecryptable` (never falling back to a less
 * specific scope), lists and `meta` leave it out (logged), and setting the
 * secret again replaces it.
 */

export const SecretScope = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("installation") }),
  z.object({ kind: z.literal("agent"), agentId: z.string() }),
  /** `userKey` is `platform:workspace:user` (workspace empty on platforms without one). */
  z.object({ kind: z.literal("user"), agentId: z.string(), userKey: z.string() }),
  /**
   * What the gateway holds for a person across agents and never hands to any
   * sandbox (their MCP connections' OAuth tokens): `resolve` never reads it.
   */
  z.object({ kind: z.literal("person"), userKey: z.string() }),
]);
export type SecretScope = z.infer<typeof SecretScope>;

export const SecretRef = z.object({ scope: SecretScope, name: z.string() });
export type SecretRef = z.infer<typeof SecretRef>;

/** Everything about a secret except its value. */
export const SecretMeta = z.object({
  name: z.string(),
  scope: SecretScope,
  /** Starts at 1, bumped by every rotate (and every set that replaces a value). */
  version: z.number(),
  createdAt: z.number(),
  updatedAt: z.number(),
  /** Masked form for UIs, e.g. `sk-…a1b2`. */
  hint: z.string(),
});
export type SecretMeta = z.infer<typeof SecretMeta>;

export interface ResolvedSecret {
  ref: SecretRef;
  value: string;
  meta: SecretMeta;
}

/** A secret as stored under its key (see secretKey). */
const StoredSecret = SecretMeta.extend({
  /** Sealed value (see crypto.ts). */
  data: z.string(),
});
type StoredSecret = z.infer<typeof StoredSecret>;

const PREFIX = "secret:";
// Read on every request that swaps a secret: cached until the next write (store/read-cache.ts).
cacheReads(PREFIX);
const KEYCHECK_KEY = "secret-keycheck";
const KEYCHECK_AAD = "lobu-master-key-check/v1";
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const AGENT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const LIST_PAGE = 500;

/** Masked hint that helps a person recognise a key without revealing it. */
export function maskSecret(value: string): string {
  const chars = Array.from(value);
  if (chars.length >= 16) return `${chars.slice(0, 3).join("")}…${chars.slice(-4).join("")}`;
  if (chars.length >= 8) return `…${chars.slice(-2).join("")}`;
  return "…";
}

export function describeScope(scope: SecretScope): string {
  switch (scope.kind) {
    case "installation":
      return "installation";
    case "agent":
      return `agent ${scope.agentId}`;
    case "user":
      return `user ${scope.userKey} of agent ${scope.agentId}`;
    case "person":
      return `person ${scope.userKey} (gateway only)`;
  }
}

function invalid(message: string): LobuError {
  return new LobuError("secret_invalid", message, { status: 400 });
}

function validateRef(ref: SecretRef): void {
  if (!NAME.test(ref.name)) {
    throw invalid(
      `invalid secret name "${ref.name}": use letters, digits, '.', '-' and '_' (max 128), starting with a letter or digit`,
    );
  }
  validateScope(ref.scope);
}

function validateScope(scope: SecretScope): void {
  if (scope.kind === "installation") return;
  if (scope.kind === "person") {
    if (!scope.userKey || scope.userKey.length > 512)
      throw invalid("a person's secret needs a userKey (platform:workspace:user)");
    return;
  }
  if (!AGENT.test(scope.agentId)) throw invalid(`invalid agent id "${scope.agentId}"`);
  if (scope.kind === "user" && (!scope.userKey || scope.userKey.length > 512)) {
    throw invalid("a user-scoped secret needs a userKey (platform:workspace:user)");
  }
}

/** KeyValue prefix holding every secret of one scope. */
function scopePrefix(scope: SecretScope): string {
  switch (scope.kind) {
    case "installation":
      return `${PREFIX}inst:`;
    case "agent":
      return `${PREFIX}agent:${scope.agentId}:`;
    case "user":
      // userKey contains ':'; encoding keeps prefixes of different users disjoint.
      return `${PREFIX}user:${scope.agentId}:${encodeURIComponent(scope.userKey)}:`;
    case "person":
      return `${PREFIX}person:${encodeURIComponent(scope.userKey)}:`;
  }
}

export function secretKey(ref: SecretRef): string {
  return `${scopePrefix(ref.scope)}${ref.name}`;
}

function aadFor(ref: SecretRef): string {
  const s = ref.scope;
  return JSON.stringify([
    "lobu-secret/v1",
    s.kind,
    s.kind === "installation" || s.kind === "person" ? "" : s.agentId,
    s.kind === "user" || s.kind === "person" ? s.userKey : "",
    ref.name,
  ]);
}

function metaOf(rec: StoredSecret): SecretMeta {
  return {
    name: rec.name,
    scope: rec.scope,
    version: rec.version,
    createdAt: rec.createdAt,
    updatedAt: rec.updatedAt,
    hint: rec.hint,
  };
}

function undecryptable(ref: SecretRef, err: unknown): LobuError {
  return new LobuError(
    "secret_undecryptable",
    `secret "${ref.name}" (${describeScope(ref.scope)}) cannot be decrypted: ${(err as Error).message}`,
    {
      status: 500,
      hint: "The master key (LOBU_MASTER_KEY or <data_dir>/master.key) is not the one that encrypted it, or the stored value was modified. Restore the original key, or set the secret again.",
      cause: err,
    },
  );
}

/** A stored secret record that is not one (it cannot have been written as it reads). */
function unreadable(key: string, reason: string): LobuError {
  return new LobuError(
    "secret_undecryptable",
    `the stored secret ${key} is unreadable (${reason})`,
    {
      status: 500,
      hint: "The record is corrupt or was written by an incompatible version. Set the secret again to replace it.",
    },
  );
}

export interface SecretStoreOptions {
  now?: () => number;
  /** Where unreadable records are reported (default: a logger of its own). */
  log?: Logger;
  /**
   * Identity → account: a user-scoped secret is kept under the person's
   * account, so linked identities share it (docs/identity.md). Default: none linked.
   */
  accountOf?: AccountOf;
}

export class SecretStore {
  readonly #kv: KeyValue;
  #key: SealKey;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #accountOf: AccountOf;
  /** Decrypted records by their stored text (see ReadMemo): the proxy reads a secret per request. */
  readonly #opened = new ReadMemo<ResolvedSecret>(1024);

  constructor(kv: KeyValue, masterKey: Uint8Array, opts: SecretStoreOptions = {}) {
    if (masterKey.length !== 32) throw new Error("the master key must be 32 bytes");
    this.#kv = kv;
    this.#key = toKeyObject(masterKey);
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log ?? createLogger("secrets");
    this.#accountOf = opts.accountOf ?? ownAccount;
  }

  /** The scope with a person's identity replaced by their account (their own secrets and MCP tokens). */
  async #scope<S extends SecretScope>(scope: S): Promise<S> {
    if (scope.kind !== "user" && scope.kind !== "person") return scope;
    return { ...scope, userKey: await this.#accountOf(scope.userKey) };
  }

  async #ref(ref: SecretRef): Promise<SecretRef> {
    return { ...ref, scope: await this.#scope(ref.scope) };
  }

  /**
   * Check at startup that the master key is the one the store was written with
   * (first call records it). Fails with a message saying what to do instead of
   * letting every later secret read fail one by one.
   */
  async verifyMasterKey(): Promise<void> {
    const existing = await this.#kv.get(KEYCHECK_KEY);
    if (existing === null) {
      await this.#kv.set(KEYCHECK_KEY, seal(this.#key, "ok", KEYCHECK_AAD), { ifNotExists: true });
      return this.verifyMasterKey();
    }
    try {
      open(this.#key, existing, KEYCHECK_AAD);
    } catch (err) {
      throw new LobuError(
        "master_key_mismatch",
        "the master key does not match the one the stored secrets were encrypted with",
        {
          status: 500,
          hint: "Restore the previous LOBU_MASTER_KEY or <data_dir>/master.key. To change the key, run `lobu master-key rotate` with the old key still in place.",
          cause: err,
        },
      );
    }
  }

  /** Create or replace a secret. Replacing keeps createdAt and bumps the version. */
  async set(ref: SecretRef, value: string): Promise<SecretMeta> {
    return this.#write(await this.#ref(ref), value, false);
  }

  /** Replace the value of an existing secret (404 when there is none). */
  async rotate(ref: SecretRef, value: string): Promise<SecretMeta> {
    return this.#write(await this.#ref(ref), value, true);
  }

  async #write(ref: SecretRef, value: string, mustExist: boolean): Promise<SecretMeta> {
    validateRef(ref);
    if (typeof value !== "string" || value.length === 0)
      throw invalid("a secret value is required");
    const key = secretKey(ref);
    redactAs(key, value);
    let meta!: SecretMeta;
    try {
      await this.#kv.update(key, (raw) => {
        if (raw === null && mustExist) {
          throw new LobuError(
            "secret_not_found",
            `no secret "${ref.name}" in ${describeScope(ref.scope)}`,
            { status: 404, hint: "Set it first; rotate only replaces an existing secret." },
          );
        }
        // An unreadable record is replaced as if there were none (logged).
        const prev = raw === null ? undefined : this.#stored(key, raw, "replaced by the new value");
        const now = this.#now();
        const rec: StoredSecret = {
          name: ref.name,
          scope: ref.scope,
          version: prev ? prev.version + 1 : 1,
          createdAt: prev ? prev.createdAt : now,
          updatedAt: now,
          hint: maskSecret(value),
          data: seal(this.#key, value, aadFor(ref)),
        };
        meta = metaOf(rec);
        return JSON.stringify(rec);
      });
    } catch (err) {
      if (!isLobuError(err) || err.code !== "conflict") throw err;
      throw new LobuError("secret_conflict", `secret "${ref.name}" is being changed concurrently`, {
        status: 409,
        hint: "Try again.",
        cause: err,
      });
    }
    return meta;
  }

  /**
   * The secret's value, created with `make()` when there is none. Gateways
   * racing to create it all end up with the one that was written first (a
   * key that encrypts other records must never be replaced).
   */
  async ensure(asked: SecretRef, make: () => string): Promise<string> {
    validateRef(asked);
    const ref = await this.#ref(asked);
    const key = secretKey(ref);
    const raw = await this.#kv.update(key, (current) => {
      if (current !== null) return undefined;
      const value = make();
      redactAs(key, value);
      const now = this.#now();
      const rec: StoredSecret = {
        name: ref.name,
        scope: ref.scope,
        version: 1,
        createdAt: now,
        updatedAt: now,
        hint: maskSecret(value),
        data: seal(this.#key, value, aadFor(ref)),
      };
      return JSON.stringify(rec);
    });
    if (raw === null) throw unreadable(key, "it vanished while being created");
    return this.#decrypt(ref, raw).value;
  }

  async get(asked: SecretRef): Promise<string | null> {
    validateRef(asked);
    const ref = await this.#ref(asked);
    const raw = await this.#kv.get(secretKey(ref));
    return raw === null ? null : this.#decrypt(ref, raw).value;
  }

  /** Metadata only (no decryption). */
  async meta(asked: SecretRef): Promise<SecretMeta | null> {
    validateRef(asked);
    const ref = await this.#ref(asked);
    const key = secretKey(ref);
    const raw = await this.#kv.get(key);
    const rec = raw === null ? undefined : this.#stored(key, raw, "it reads as unset");
    return rec ? metaOf(rec) : null;
  }

  async delete(ref: SecretRef): Promise<boolean> {
    validateRef(ref);
    const key = secretKey(await this.#ref(ref));
    releaseSecrets(redactionOwner(key));
    return this.#kv.del(key);
  }

  /**
   * Secrets of one scope (exactly that scope: an agent's list does not include its
   * users' secrets), or of every scope when omitted. Never returns values.
   */
  async list(scope?: SecretScope): Promise<SecretMeta[]> {
    if (scope) validateScope(scope);
    const prefix = scope ? scopePrefix(await this.#scope(scope)) : PREFIX;
    const out: SecretMeta[] = [];
    for await (const { key, value } of this.#scan(prefix)) {
      const rec = this.#stored(key, value, "left out of the list");
      if (rec) out.push(metaOf(rec));
    }
    return out;
  }

  /**
   * Every user-scoped secret of one person, on any agent: its key and, when
   * readable, its metadata (never the value). Unreadable records are included
   * so an erasure removes them too.
   */
  async ofPerson(userKey: string): Promise<{ key: string; meta?: SecretMeta }[]> {
    const out: { key: string; meta?: SecretMeta }[] = [];
    const encoded = encodeURIComponent(userKey);
    for await (const { key, value } of this.#scan(`${PREFIX}user:`)) {
      // secret:user:<agent>:<encoded user key>:<name>; neither part contains ':'.
      const [agent, user] = key.slice(`${PREFIX}user:`.length).split(":");
      if (!agent || user !== encoded) continue;
      const rec = this.#stored(key, value, "exported by name only");
      out.push({ key, ...(rec ? { meta: metaOf(rec) } : {}) });
    }
    // What the gateway alone holds for the person (MCP tokens): secret:person:<encoded user key>:<name>.
    for await (const { key, value } of this.#scan(`${PREFIX}person:${encoded}:`)) {
      const rec = this.#stored(key, value, "exported by name only");
      out.push({ key, ...(rec ? { meta: metaOf(rec) } : {}) });
    }
    return out;
  }

  /** Delete stored secrets by key (an erasure, after `ofPerson`). */
  async deleteKeys(keys: string[]): Promise<number> {
    let n = 0;
    for (const key of keys) {
      if (!key.startsWith(PREFIX)) continue;
      releaseSecrets(redactionOwner(key));
      if (await this.#kv.del(key)) n++;
    }
    return n;
  }

  /**
   * The most specific secret called `name` for this agent and user:
   * user > agent > installation. Null when none exists.
   */
  async resolve(
    name: string,
    ctx: { agentId: string; userKey?: string },
  ): Promise<ResolvedSecret | null> {
    const refs: SecretRef[] = [];
    if (ctx.userKey) {
      const userKey = await this.#accountOf(ctx.userKey);
      refs.push({ name, scope: { kind: "user", agentId: ctx.agentId, userKey } });
    }
    refs.push({ name, scope: { kind: "agent", agentId: ctx.agentId } });
    refs.push({ name, scope: { kind: "installation" } });
    refs.forEach(validateRef);
    const raws = await this.#kv.getMany(refs.map(secretKey));
    for (let i = 0; i < refs.length; i++) {
      const raw = raws[i];
      if (raw != null) return this.#decrypt(refs[i]!, raw);
    }
    return null;
  }

  /**
   * Re-encrypt every secret from `oldKey` to `newKey` (master-key rotation), then use
   * `newKey`. Resumable: values already under `newKey` are left alone. Run it with
   * the other gateways stopped, since they still hold the old key.
   */
  async reencryptAll(
    oldKey: Uint8Array,
    newKey: Uint8Array,
  ): Promise<{ reencrypted: number; alreadyCurrent: number }> {
    if (newKey.length !== 32) throw new Error("the new master key must be 32 bytes");
    const oldK = toKeyObject(oldKey);
    const newK = toKeyObject(newKey);
    let reencrypted = 0;
    let alreadyCurrent = 0;
    for await (const { key } of this.#scan(PREFIX)) {
      // Set by the last run of the update.
      let outcome = "gone" as "reencrypted" | "current" | "gone";
      await this.#kv.update(key, (raw) => {
        outcome = "gone";
        if (raw === null) return undefined;
        const decoded = decodeRecord(StoredSecret, raw);
        if (!decoded.ok) throw unreadable(key, decoded.reason);
        const rec = decoded.record;
        const ref: SecretRef = { name: rec.name, scope: rec.scope };
        if (secretKey(ref) !== key) {
          throw undecryptable(ref, new DecryptError(`stored under the wrong key (${key})`));
        }
        const aad = aadFor(ref);
        let value: string;
        try {
          value = open(oldK, rec.data, aad);
        } catch (err) {
          if (!(err instanceof DecryptError)) throw err;
          try {
            open(newK, rec.data, aad);
          } catch {
            throw undecryptable(ref, err);
          }
          outcome = "current";
          return undefined;
        }
        outcome = "reencrypted";
        return JSON.stringify({ ...rec, data: seal(newK, value, aad) });
      });
      if (outcome === "reencrypted") reencrypted++;
      else if (outcome === "current") alreadyCurrent++;
    }
    await this.#kv.set(KEYCHECK_KEY, seal(newK, "ok", KEYCHECK_AAD));
    this.#key = newK;
    this.#opened.clear();
    return { reencrypted, alreadyCurrent };
  }

  #decrypt(ref: SecretRef, raw: string): ResolvedSecret {
    const key = secretKey(ref);
    // The memo is keyed by the store key, which names the ref (scope and name) the AAD binds.
    const opened = this.#opened.get(key, raw, () => this.#decryptNow(ref, key, raw));
    // Every read: a memoized value is still the one to redact (a failed write may have held another).
    redactAs(key, opened.value);
    return { ...opened, ref };
  }

  #decryptNow(ref: SecretRef, key: string, raw: string): ResolvedSecret {
    const decoded = decodeRecord(StoredSecret, raw);
    if (!decoded.ok) {
      logUnreadable(this.#log, { record: "secret", key }, decoded.reason, "its value is refused");
      throw unreadable(key, decoded.reason);
    }
    const rec = decoded.record;
    let value: string;
    try {
      value = open(this.#key, rec.data, aadFor(ref));
    } catch (err) {
      throw undecryptable(ref, err);
    }
    return { ref, value, meta: metaOf(rec) };
  }

  /** The record stored as `raw` under `key`, or undefined (logged) when it is unreadable. */
  #stored(key: string, raw: string, what: string): StoredSecret | undefined {
    return readRecord(StoredSecret, raw, { record: "secret", key }, this.#log, what);
  }

  async *#scan(prefix: string): AsyncGenerator<{ key: string; value: string }> {
    let after: string | undefined;
    for (;;) {
      const page = await this.#kv.list(prefix, { limit: LIST_PAGE, ...(after ? { after } : {}) });
      yield* page;
      if (page.length < LIST_PAGE) return;
      after = page[page.length - 1]!.key;
    }
  }
}

/**
 * A stored secret's value is redacted from logs while it is the stored value:
 * replacing it (a rotation, a refreshed OAuth token) drops the old value from
 * the redaction registry and deleting drops it, so the registry stays the size
 * of the store's live secrets rather than of every value ever written.
 */
function redactionOwner(key: string): string {
  return `secret-store\0${key}`;
}

function redactAs(key: string, value: string): void {
  holdSecrets(redactionOwner(key), [value]);
}
