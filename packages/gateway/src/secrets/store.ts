import { LobuError, registerSecret } from "@lobu/core";
import type { KeyValue } from "../store/port.ts";
import { DecryptError, open, type SealKey, seal, toKeyObject } from "./crypto.ts";

/**
 * Encrypted secrets (API keys, OAuth tokens) in the store's KeyValue. Each value is
 * sealed with AES-256-GCM under the master key; the AAD names the scope and the
 * secret, so a ciphertext copied under another key (another agent, another user)
 * fails to decrypt instead of leaking across tenants.
 */

export type SecretScope =
  | { kind: "installation" }
  | { kind: "agent"; agentId: string }
  /** `userKey` is `platform:workspace:user` (workspace empty on platforms without one). */
  | { kind: "user"; agentId: string; userKey: string };

export interface SecretRef {
  scope: SecretScope;
  name: string;
}

/** Everything about a secret except its value. */
export interface SecretMeta {
  name: string;
  scope: SecretScope;
  /** Starts at 1, bumped by every rotate (and every set that replaces a value). */
  version: number;
  createdAt: number;
  updatedAt: number;
  /** Masked form for UIs, e.g. `sk-…a1b2`. */
  hint: string;
}

export interface ResolvedSecret {
  ref: SecretRef;
  value: string;
  meta: SecretMeta;
}

interface StoredSecret extends SecretMeta {
  /** Sealed value (see crypto.ts). */
  data: string;
}

const PREFIX = "secret:";
const KEYCHECK_KEY = "secret-keycheck";
const KEYCHECK_AAD = "lobu-master-key-check/v1";
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const AGENT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const LIST_PAGE = 500;
const MAX_CAS_RETRIES = 20;

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
    s.kind === "installation" ? "" : s.agentId,
    s.kind === "user" ? s.userKey : "",
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

export interface SecretStoreOptions {
  now?: () => number;
}

export class SecretStore {
  readonly #kv: KeyValue;
  #key: SealKey;
  readonly #now: () => number;

  constructor(kv: KeyValue, masterKey: Uint8Array, opts: SecretStoreOptions = {}) {
    if (masterKey.length !== 32) throw new Error("the master key must be 32 bytes");
    this.#kv = kv;
    this.#key = toKeyObject(masterKey);
    this.#now = opts.now ?? Date.now;
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
    return this.#write(ref, value, false);
  }

  /** Replace the value of an existing secret (404 when there is none). */
  async rotate(ref: SecretRef, value: string): Promise<SecretMeta> {
    return this.#write(ref, value, true);
  }

  async #write(ref: SecretRef, value: string, mustExist: boolean): Promise<SecretMeta> {
    validateRef(ref);
    if (typeof value !== "string" || value.length === 0)
      throw invalid("a secret value is required");
    registerSecret(value);
    const key = secretKey(ref);
    for (let attempt = 0; attempt < MAX_CAS_RETRIES; attempt++) {
      const raw = await this.#kv.get(key);
      if (raw === null && mustExist) {
        throw new LobuError(
          "secret_not_found",
          `no secret "${ref.name}" in ${describeScope(ref.scope)}`,
          {
            status: 404,
            hint: "Set it first; rotate only replaces an existing secret.",
          },
        );
      }
      const prev = raw === null ? null : (JSON.parse(raw) as StoredSecret);
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
      if (await this.#kv.compareAndSet(key, raw, JSON.stringify(rec))) return metaOf(rec);
    }
    throw new LobuError("secret_conflict", `secret "${ref.name}" is being changed concurrently`, {
      status: 409,
      hint: "Try again.",
    });
  }

  async get(ref: SecretRef): Promise<string | null> {
    validateRef(ref);
    const raw = await this.#kv.get(secretKey(ref));
    return raw === null ? null : this.#decrypt(ref, raw).value;
  }

  /** Metadata only (no decryption). */
  async meta(ref: SecretRef): Promise<SecretMeta | null> {
    validateRef(ref);
    const raw = await this.#kv.get(secretKey(ref));
    return raw === null ? null : metaOf(JSON.parse(raw) as StoredSecret);
  }

  async delete(ref: SecretRef): Promise<boolean> {
    validateRef(ref);
    return this.#kv.del(secretKey(ref));
  }

  /**
   * Secrets of one scope (exactly that scope: an agent's list does not include its
   * users' secrets), or of every scope when omitted. Never returns values.
   */
  async list(scope?: SecretScope): Promise<SecretMeta[]> {
    if (scope) validateScope(scope);
    const prefix = scope ? scopePrefix(scope) : PREFIX;
    const out: SecretMeta[] = [];
    for await (const { value } of this.#scan(prefix)) {
      out.push(metaOf(JSON.parse(value) as StoredSecret));
    }
    return out;
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
      refs.push({ name, scope: { kind: "user", agentId: ctx.agentId, userKey: ctx.userKey } });
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
      for (let attempt = 0; ; attempt++) {
        const raw = await this.#kv.get(key);
        if (raw === null) break;
        const rec = JSON.parse(raw) as StoredSecret;
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
          alreadyCurrent++;
          break;
        }
        const next = JSON.stringify({ ...rec, data: seal(newK, value, aad) });
        if (await this.#kv.compareAndSet(key, raw, next)) {
          reencrypted++;
          break;
        }
        if (attempt >= MAX_CAS_RETRIES) throw new Error(`secret ${key} kept changing`);
      }
    }
    await this.#kv.set(KEYCHECK_KEY, seal(newK, "ok", KEYCHECK_AAD));
    this.#key = newK;
    return { reencrypted, alreadyCurrent };
  }

  #decrypt(ref: SecretRef, raw: string): ResolvedSecret {
    const rec = JSON.parse(raw) as StoredSecret;
    let value: string;
    try {
      value = open(this.#key, rec.data, aadFor(ref));
    } catch (err) {
      throw undecryptable(ref, err);
    }
    registerSecret(value);
    return { ref, value, meta: metaOf(rec) };
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
