import { createLogger, isPlaceholder, newPlaceholder } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { normalizePattern } from "../domain/host-patterns.ts";
import type { KeyValue } from "../store/port.ts";
import { cacheReads } from "../store/read-cache.ts";
import { scanKeys } from "../store/scan.ts";
import { ReadMemo } from "../util/read-memo.ts";
import { readRecord } from "../util/stored-record.ts";
import { SecretRef, secretKey } from "./store.ts";

/**
 * Placeholders are what a worker sees instead of a secret (`lobu_secret_<uuid>`).
 * The egress proxy swaps one for the real value only in requests from the sandbox
 * it was issued to, to a host its binding allows, and only while a turn runs on
 * that sandbox (a turn-bound one: while its own turn runs; see runtime/turn-gate.ts).
 * Bindings live in the store so every gateway behind a load balancer can swap them.
 * A binding that does not read back as one (corrupt, from an incompatible
 * version, or filed under another placeholder) is never swapped (logged).
 */

/** Parts of a request where a placeholder may be replaced (`url`: path and query). */
export const SwapLocation = z.enum(["header", "url", "body"]);
export type SwapLocation = z.infer<typeof SwapLocation>;
export const ALL_SWAP_LOCATIONS: readonly SwapLocation[] = SwapLocation.options;

/**
 * Who may turn a placeholder into its value: the egress proxy (`proxy`, for
 * credentials the agent's shell uses on the hosts they are bound to) or only the
 * gateway's LLM relay (`relay`, provider keys: the proxy never swaps them, so an
 * agent cannot use the key against the provider directly, unmetered).
 */
export type PlaceholderPurpose = "proxy" | "relay";

/**
 * The turn a placeholder belongs to, for credentials that are one person's
 * (their own secrets and keys) and for every relay placeholder: it acts only
 * while that very turn runs on its sandbox (see runtime/turn-gate.ts) and is
 * revoked when the turn ends (`revokeTurns`).
 */
export const TurnBinding = z.object({
  turnId: z.string().min(1),
  /** The turn's sender (`platform:workspace:user`). */
  userKey: z.string(),
});
export type TurnBinding = z.infer<typeof TurnBinding>;

/** Stored as `ph:<placeholder>`. */
export const PlaceholderBinding = z.object({
  placeholder: z.string(),
  sandboxId: z.string().min(1),
  secret: SecretRef,
  /** Domain patterns (see proxy/domains.ts) of hosts that may receive the real value. */
  hosts: z.array(z.string()).min(1),
  locations: z.array(SwapLocation).min(1),
  issuedAt: z.number(),
  /** Absent for `proxy` (the default). */
  purpose: z.literal("relay").optional(),
  /** Absent for placeholders bound to the sandbox only (agent and installation credentials). */
  turn: TurnBinding.optional(),
});
export type PlaceholderBinding = z.infer<typeof PlaceholderBinding>;

/** Whether the egress proxy may swap this binding (relay-only bindings it must not). */
export function swappableByProxy(binding: PlaceholderBinding): boolean {
  return binding.purpose === undefined;
}

export interface IssueOptions {
  sandboxId: string;
  secret: SecretRef;
  hosts: string[];
  /**
   * Where the value may be swapped in (default: headers, the URL and textual
   * bodies). Narrow it to `["header"]` for keys that only ever travel in a header:
   * a body swap lets an agent write the value into data the host stores.
   */
  locations?: SwapLocation[];
  /** Default `proxy`. A `relay` placeholder is a different one from the `proxy` placeholder of the same secret. */
  purpose?: PlaceholderPurpose;
  /** Bind it to one turn: a fresh placeholder, valid during that turn only. */
  turn?: TurnBinding;
}

/** The read side the egress proxy needs. */
export interface PlaceholderLookup {
  lookup(placeholder: string): Promise<PlaceholderBinding | null>;
  forSandbox(sandboxId: string): Promise<PlaceholderBinding[]>;
}

const BINDING = "ph:";
const BY_SANDBOX = "phs:";
// Read on every proxied request: cached until the next write (store/read-cache.ts).
cacheReads(BINDING);
cacheReads(BY_SANDBOX);

function sandboxPrefix(sandboxId: string): string {
  if (!sandboxId) throw new Error("sandboxId is required");
  return `${BY_SANDBOX}${encodeURIComponent(sandboxId)}:`;
}

/** Index entries of turn-bound placeholders (all turns, or one): `phs:<sandbox>:turn:<turn>:...`. */
function turnPrefix(sandboxId: string, turnId?: string): string {
  return `${sandboxPrefix(sandboxId)}turn:${turnId === undefined ? "" : `${encodeURIComponent(turnId)}:`}`;
}

function indexKey(
  sandboxId: string,
  secret: SecretRef,
  purpose: PlaceholderPurpose,
  turn: TurnBinding | undefined,
): string {
  const base = turn ? turnPrefix(sandboxId, turn.turnId) : sandboxPrefix(sandboxId);
  return `${base}${purpose === "relay" ? "relay:" : ""}${secretKey(secret)}`;
}

function sameBinding(a: PlaceholderBinding, hosts: string[], locations: SwapLocation[]): boolean {
  return (
    a.hosts.length === hosts.length &&
    a.hosts.every((h, i) => h === hosts[i]) &&
    a.locations.length === locations.length &&
    a.locations.every((l, i) => l === locations[i])
  );
}

export class PlaceholderRegistry implements PlaceholderLookup {
  readonly #kv: KeyValue;
  readonly #now: () => number;
  readonly #log: Logger;
  /**
   * Decoded bindings by their stored text (see ReadMemo): the proxy looks one up
   * per request, and a revoked one reads as absent at once since the key is read.
   */
  readonly #decoded = new ReadMemo<PlaceholderBinding | null>(4096);

  /** `log`: where unreadable bindings are reported (default: a logger of its own). */
  constructor(kv: KeyValue, opts: { now?: () => number; log?: Logger } = {}) {
    this.#kv = kv;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log ?? createLogger("placeholders");
  }

  /**
   * The placeholder for this sandbox and secret: the same one every time until it
   * is revoked. Issuing again with other hosts or locations updates the binding
   * (the latest config wins).
   */
  async issue(opts: IssueOptions): Promise<string> {
    const hosts = [...new Set(opts.hosts.map(normalizePattern))].sort();
    if (hosts.length === 0) {
      throw new Error("a placeholder needs at least one host pattern where it may be used");
    }
    const locations = ALL_SWAP_LOCATIONS.filter((l) =>
      (opts.locations ?? ALL_SWAP_LOCATIONS).includes(l),
    );
    if (locations.length === 0) throw new Error("a placeholder needs at least one swap location");
    const purpose = opts.purpose ?? "proxy";
    const index = indexKey(opts.sandboxId, opts.secret, purpose, opts.turn);

    const bindingFor = (placeholder: string, issuedAt: number): PlaceholderBinding => ({
      placeholder,
      sandboxId: opts.sandboxId,
      secret: opts.secret,
      hosts,
      locations,
      issuedAt,
      ...(purpose === "relay" ? { purpose } : {}),
      ...(opts.turn ? { turn: { turnId: opts.turn.turnId, userKey: opts.turn.userKey } } : {}),
    });
    for (;;) {
      const placeholder = await this.#kv.get(index);
      if (placeholder === null) {
        // A new one (every turn-bound placeholder is): its binding and its index entry are
        // written in one round. ifNotExists on the index: of two concurrent issues, one
        // placeholder wins; the other's binding, never handed out, is deleted.
        const fresh = newPlaceholder();
        const [won] = await Promise.all([
          this.#kv.set(index, fresh, { ifNotExists: true }),
          this.#kv.set(`${BINDING}${fresh}`, JSON.stringify(bindingFor(fresh, this.#now()))),
        ]);
        if (won) return fresh;
        await this.#kv.del(`${BINDING}${fresh}`);
        continue;
      }
      const existing = await this.lookup(placeholder);
      if (existing && sameBinding(existing, hosts, locations)) return placeholder;
      const binding = bindingFor(placeholder, existing?.issuedAt ?? this.#now());
      await this.#kv.set(`${BINDING}${placeholder}`, JSON.stringify(binding));
      return placeholder;
    }
  }

  async lookup(placeholder: string): Promise<PlaceholderBinding | null> {
    if (!isPlaceholder(placeholder)) return null;
    const raw = await this.#kv.get(`${BINDING}${placeholder}`);
    return raw === null ? null : (this.#decode(placeholder, raw) ?? null);
  }

  async forSandbox(sandboxId: string): Promise<PlaceholderBinding[]> {
    const index = await this.#kv.list(sandboxPrefix(sandboxId), { limit: 10_000 });
    if (index.length === 0) return [];
    const raws = await this.#kv.getMany(index.map((e) => `${BINDING}${e.value}`));
    return raws.flatMap((r, i) => (r === null ? [] : (this.#decode(index[i]!.value, r) ?? [])));
  }

  /** The binding stored as `raw` for `placeholder`; undefined (logged) when it is unreadable. */
  #decode(placeholder: string, raw: string): PlaceholderBinding | undefined {
    const binding = this.#decoded.get(
      placeholder,
      raw,
      (r) => this.#decodeNow(placeholder, r) ?? null,
    );
    return binding ?? undefined;
  }

  #decodeNow(placeholder: string, raw: string): PlaceholderBinding | undefined {
    const source = { record: "placeholder binding", key: `${BINDING}${placeholder}` };
    const binding = readRecord(PlaceholderBinding, raw, source, this.#log, "never swapped");
    if (binding && binding.placeholder !== placeholder) {
      this.#log.error(
        { ...source, holds: binding.placeholder },
        "stored placeholder binding is filed under another placeholder; never swapped",
      );
      return undefined;
    }
    return binding;
  }

  async revoke(placeholder: string): Promise<boolean> {
    const binding = await this.lookup(placeholder);
    if (!binding) return false;
    await this.#kv.del(`${BINDING}${placeholder}`);
    const index = indexKey(
      binding.sandboxId,
      binding.secret,
      binding.purpose ?? "proxy",
      binding.turn,
    );
    if ((await this.#kv.get(index)) === placeholder) await this.#kv.del(index);
    return true;
  }

  /**
   * Forget every placeholder that stands for one person: bound to their turns
   * or to their own secrets (an erasure). Returns how many.
   */
  async revokePerson(userKey: string): Promise<number> {
    const theirs: string[] = [];
    for await (const { key, value } of scanKeys(this.#kv, BINDING)) {
      const binding = this.#decode(key.slice(BINDING.length), value);
      if (!binding) continue;
      const scope = binding.secret.scope;
      if (binding.turn?.userKey === userKey || (scope.kind === "user" && scope.userKey === userKey))
        theirs.push(binding.placeholder);
    }
    let revoked = 0;
    for (const placeholder of theirs) if (await this.revoke(placeholder)) revoked++;
    return revoked;
  }

  /**
   * Forget every placeholder of a sandbox (call when the sandbox is deleted or
   * reset): they stop being swapped at once, and the next turn gets new ones.
   */
  async revokeSandbox(sandboxId: string): Promise<number> {
    return this.#revokeIndexed(await this.#kv.list(sandboxPrefix(sandboxId), { limit: 10_000 }));
  }

  /**
   * Forget turn-bound placeholders of a sandbox: those of `turnId` (when its turn
   * ends), or all but `except` (when a turn begins: what a crashed gateway left).
   */
  async revokeTurns(
    sandboxId: string,
    which: { turnId: string } | { except: string },
  ): Promise<number> {
    if ("turnId" in which) {
      return this.#revokeIndexed(
        await this.#kv.list(turnPrefix(sandboxId, which.turnId), { limit: 10_000 }),
      );
    }
    const keep = turnPrefix(sandboxId, which.except);
    const index = await this.#kv.list(turnPrefix(sandboxId), { limit: 10_000 });
    return this.#revokeIndexed(index.filter((e) => !e.key.startsWith(keep)));
  }

  async #revokeIndexed(index: { key: string; value: string }[]): Promise<number> {
    let revoked = 0;
    for (const entry of index) {
      if (await this.#kv.del(`${BINDING}${entry.value}`)) revoked++;
      await this.#kv.del(entry.key);
    }
    return revoked;
  }
}
