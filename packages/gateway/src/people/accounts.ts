import { createHash, randomInt, timingSafeEqual } from "node:crypto";
import { LobuError } from "@lobu/core";
import { z } from "zod";
import type { AuditRecord } from "../audit/log.ts";
import type { AccountOf } from "../domain/accounts.ts";
import type { PersonDataKind } from "../domain/person-data.ts";
import type { KeyValue } from "../store/port.ts";
import { cacheReads } from "../store/read-cache.ts";
import { scanKeys } from "../store/scan.ts";

/**
 * One person across platforms: identities (user keys `platform:workspace:user`)
 * linked into one account. The account is the user key of the identity the
 * first link code came from (its *primary*); every other identity of the
 * account points at it. Links are one level deep: a primary never points
 * anywhere, so there are no chains and no cycles.
 *
 * Linking takes proof on both sides, in a two-code handshake
 * (docs/identity.md):
 * 1. identity A (proven by its platform or settings session) creates an
 *    **offer code** (single-use, 10 minutes, stored only as a digest);
 * 2. identity B enters it: nothing is linked yet. The offer is consumed and B
 *    is shown a **finishing code**, bound to both A and B;
 * 3. A (and only A: the identity that made the offer) enters the finishing
 *    code, and B joins A's account.
 * A forwarded or leaked offer code therefore never links anyone on its own:
 * the reader gets a finishing code only A can use, and A would have to type
 * in a code a stranger sent. Every code is consumed by the first attempt
 * that names it, good or refused; wrong codes count against the one entering
 * them (and the installation), so guessing is locked out.
 *
 * Keys: `link:of:<user key>` → primary (members only), `link:members:<primary>`
 * → JSON list of members, `link:code:<sha256>` → the code's record (an offer
 * or a finishing code; the digest is the only form a code is kept in).
 */

/** Crockford base32 without I, L, O, U: readable aloud, typed without confusion. */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** 10 symbols = 50 bits: with the attempt limits below, guessing is hopeless. */
const CODE_CHARS = 10;
export const LINK_CODE_TTL_MS = 10 * 60_000;

// Every secret a turn resolves asks which account a person is (`accountResolver`):
// cached until the next write (store/read-cache.ts). Codes have a TTL and stay uncached.
cacheReads("link:of:");
/** Failed confirmations one identity may make per window, and the installation as a whole. */
const MAX_FAILURES_PER_IDENTITY = 5;
const MAX_FAILURES_PER_INSTALLATION = 100;
const FAILURE_WINDOW_MS = 15 * 60_000;
/** Codes one identity may create per window (each replaces the previous one). */
const MAX_CODES_PER_IDENTITY = 10;
/** Identities one account may hold, its primary included. */
export const MAX_IDENTITIES = 20;

const LinkCode = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("offer"),
    /** The identity that created the code (and proved itself doing so). */
    creator: z.string(),
    expiresAt: z.number(),
  }),
  z.object({
    kind: z.literal("finish"),
    /** The offer's creator: the only identity that may enter this code. */
    creator: z.string(),
    /** The identity that entered the offer, and joins when this code is entered. */
    joiner: z.string(),
    expiresAt: z.number(),
  }),
]);
type LinkCode = z.infer<typeof LinkCode>;

/** What entering a code did: handed out a finishing code, or linked. */
export type ConfirmResult =
  | {
      step: "pending";
      /** The finishing code, for the offer's creator to enter (shown to the one who entered the offer). */
      code: string;
      expiresAt: number;
    }
  | {
      step: "linked";
      /** The identity that joined the account. */
      joined: string;
      linked: LinkedAccount;
    };

const Members = z.array(z.string());

export interface LinkedAccount {
  /** The primary's user key: what the account's data is kept under. */
  account: string;
  /** Every identity of the account, the primary first. */
  identities: string[];
}

export type LinkAudit = (entry: Omit<AuditRecord, "at">) => void;

function refused(message: string, hint: string): LobuError {
  return new LobuError("link_refused", message, { status: 409, hint });
}

function invalidCode(): LobuError {
  return new LobuError("link_code_invalid", "this link code is unknown, used or expired", {
    status: 400,
    hint: "Create a new code on the account you are linking to (send `link` there, or use “Link another account” on its settings page) and enter it within 10 minutes.",
  });
}

/** The form a person types: upper case, without spaces or dashes, with look-alikes read as digits. */
export function normalizeLinkCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, "").replace(/O/g, "0").replace(/[IL]/g, "1");
}

/** `ABCDE-FGHJK`: how a code is shown. */
function display(code: string): string {
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/** Equality of two keys or digests that takes the same time wherever they differ. */
function sameKey(a: string, b: string): boolean {
  const x = createHash("sha256").update(a).digest();
  const y = createHash("sha256").update(b).digest();
  return timingSafeEqual(x, y);
}

const digest = (code: string) => createHash("sha256").update(`lobu-link\n${code}`).digest("hex");

/**
 * The one resolution identity → account, on the store alone (so the secret
 * store, opened before anything else, can use it too).
 */
export function accountResolver(kv: KeyValue): AccountOf {
  return async (userKey) => (await kv.get(`link:of:${userKey}`)) ?? userKey;
}

export class Accounts {
  readonly #kv: KeyValue;
  readonly #audit: LinkAudit;
  readonly #now: () => number;

  constructor(deps: { kv: KeyValue; audit: LinkAudit; now?: () => number }) {
    this.#kv = deps.kv;
    this.#audit = deps.audit;
    this.#now = deps.now ?? Date.now;
  }

  /** The account (primary's user key) of an identity; itself when it is linked to none. */
  get accountOf(): AccountOf {
    return accountResolver(this.#kv);
  }

  /** The identities linked with this one (itself included), or just itself. */
  async linked(userKey: string): Promise<LinkedAccount> {
    const account = await this.accountOf(userKey);
    return { account, identities: [account, ...(await this.#members(account))] };
  }

  /** Every account with more than one identity (the admin list). */
  async all(): Promise<LinkedAccount[]> {
    const out: LinkedAccount[] = [];
    for await (const { key, value } of scanKeys(this.#kv, "link:members:")) {
      const members = this.#decodeMembers(value);
      const account = key.slice("link:members:".length);
      if (members.length) out.push({ account, identities: [account, ...members] });
    }
    return out;
  }

  /**
   * A new link code for `creator` (already proven by the caller: the platform
   * delivered its message, or it holds the settings session). It replaces the
   * creator's previous code. Shown once; stored as a digest.
   */
  async createCode(creator: string): Promise<{ code: string; expiresAt: number }> {
    const made = await this.#kv.incr(`link:made:${creator}`, 1, { ttlMs: FAILURE_WINDOW_MS });
    if (made > MAX_CODES_PER_IDENTITY)
      throw new LobuError("link_rate_limited", "too many link codes were created just now", {
        status: 429,
        hint: "Wait 15 minutes, then create one code and use it.",
      });
    const previous = await this.#kv.get(`link:codeby:${creator}`);
    if (previous) await this.#kv.del(`link:code:${previous}`);
    const { code, hash, expiresAt } = await this.#store({ kind: "offer", creator });
    await this.#kv.set(`link:codeby:${creator}`, hash, { ttlMs: LINK_CODE_TTL_MS });
    this.#audit({ action: "identity.link_code_created", actor: creator });
    return { code, expiresAt };
  }

  /** A fresh random code stored (as its digest) with `record`; the code as shown. */
  async #store(
    record:
      | { kind: "offer"; creator: string }
      | { kind: "finish"; creator: string; joiner: string },
  ): Promise<{ code: string; hash: string; expiresAt: number }> {
    let code = "";
    for (let i = 0; i < CODE_CHARS; i++) code += ALPHABET[randomInt(ALPHABET.length)];
    const expiresAt = this.#now() + LINK_CODE_TTL_MS;
    const hash = digest(code);
    await this.#kv.set(`link:code:${hash}`, JSON.stringify({ ...record, hash, expiresAt }), {
      ttlMs: LINK_CODE_TTL_MS,
    });
    return { code: display(code), hash, expiresAt };
  }

  /**
   * `confirmer` (proven by the caller) enters a code. An offer code hands out
   * a finishing code for the offer's creator and links nothing; a finishing
   * code, entered by that creator, links the identity that entered the offer
   * into the creator's account. Every code is consumed by the first attempt
   * that names it, good or refused, so it can never be used twice. Refused
   * when the joiner is linked already (unlink it first: nothing is moved
   * silently), is in the creator's account, or the account is full.
   */
  async confirm(confirmer: string, input: string): Promise<ConfirmResult> {
    await this.#checkAttempts(confirmer);
    const record = await this.#take(input);
    if (!record) {
      await this.#failed(confirmer, "unknown");
      throw invalidCode();
    }
    if (record.kind === "offer") {
      const { creator } = record;
      await this.#kv.del(`link:codeby:${creator}`);
      // Refuse now what the last step would refuse, rather than hand out a useless code.
      await this.#checkJoinable(confirmer, await this.accountOf(creator));
      const finish = await this.#store({ kind: "finish", creator, joiner: confirmer });
      this.#audit({
        action: "identity.link_pending",
        actor: confirmer,
        details: { account: await this.accountOf(creator), codeBy: creator },
      });
      return { step: "pending", code: finish.code, expiresAt: finish.expiresAt };
    }
    // Only the offer's creator finishes: anyone else holding this code is
    // the one who entered the offer, or someone it was passed on to.
    if (!sameKey(confirmer, record.creator)) {
      await this.#failed(confirmer, "wrong_account");
      throw invalidCode();
    }
    const linked = await this.#join(record.joiner, record.creator, {
      codeBy: record.creator,
      approvedBy: confirmer,
    });
    return { step: "linked", joined: record.joiner, linked };
  }

  /** The live record of a code, taken (so consumed) from the store; undefined when unknown or expired. */
  async #take(input: string): Promise<LinkCode | undefined> {
    const code = normalizeLinkCode(input);
    if (code.length !== CODE_CHARS || ![...code].every((ch) => ALPHABET.includes(ch)))
      return undefined;
    const hash = digest(code);
    const raw = await this.#kv.take(`link:code:${hash}`);
    const parsed = raw === null ? undefined : LinkCode.safeParse(parseJson(raw));
    if (!parsed?.success || parsed.data.expiresAt <= this.#now()) return undefined;
    // The store found it by digest; the record names its digest too, checked
    // in constant time so a tampered or misfiled record cannot stand in.
    const stored = (parseJson(raw ?? "") as { hash?: unknown }).hash;
    if (typeof stored !== "string" || !sameKey(stored, hash)) return undefined;
    return parsed.data;
  }

  /**
   * Sign-in with the team's OpenID Connect provider (people/oidc.ts): the
   * first identity to sign in with a subject holds it; every later identity
   * that signs in with the same subject joins that identity's account (the
   * provider proved both). `subject` is `issuer` and `sub`, digested.
   */
  async linkBySubject(identity: string, subject: string): Promise<LinkedAccount> {
    const key = `link:oidc:${createHash("sha256").update(subject).digest("hex")}`;
    await this.#kv.set(key, identity, { ifNotExists: true });
    const holder = (await this.#kv.get(key)) ?? identity;
    if (holder === identity) return this.linked(identity);
    if ((await this.accountOf(identity)) === (await this.accountOf(holder)))
      return this.linked(identity);
    return this.#join(identity, holder, { via: "oidc" });
  }

  /** Link `joiner` into the account of `into` (both proven by the caller). */
  async #join(
    joiner: string,
    into: string,
    details: Record<string, unknown>,
  ): Promise<LinkedAccount> {
    const account = await this.accountOf(into);
    await this.#checkJoinable(joiner, account);
    // The claim: of two links made at once for one identity, one wins.
    if (!(await this.#kv.set(`link:of:${joiner}`, account, { ifNotExists: true })))
      throw this.#elsewhere(joiner, account);
    let full = false;
    await this.#kv.update(`link:members:${account}`, (current) => {
      const members = current === null ? [] : this.#decodeMembers(current);
      full = members.length + 1 >= MAX_IDENTITIES;
      if (full || members.includes(joiner)) return undefined;
      return JSON.stringify([...members, joiner]);
    });
    // The account's primary joined another account meanwhile: no chains.
    if (full || (await this.#kv.get(`link:of:${account}`)) !== null) {
      await this.#kv.del(`link:of:${joiner}`);
      await this.#kv.update(`link:members:${account}`, (current) =>
        JSON.stringify(this.#decodeMembers(current ?? "[]").filter((m) => m !== joiner)),
      );
      throw full
        ? this.#refuse(
            joiner,
            account,
            "full",
            `an account holds at most ${MAX_IDENTITIES} identities`,
            "Unlink one you no longer use first.",
          )
        : this.#refuse(
            joiner,
            account,
            "changed",
            "the account changed while linking",
            "Try again.",
          );
    }
    this.#audit({
      action: "identity.linked",
      actor: joiner,
      details: { account, identity: joiner, ...details },
    });
    return this.linked(account);
  }

  /**
   * Take `identity` out of its account. A member goes back to its own data
   * (what it had before linking); when the primary leaves, the account is
   * dissolved: the primary keeps the shared data, every member goes back to
   * its own. `by` is the actor (the person, from any identity of the
   * account, or an admin). Returns whether anything was linked.
   */
  async unlink(identity: string, by: string): Promise<boolean> {
    const account = await this.accountOf(identity);
    const members = await this.#members(account);
    if (account === identity) {
      if (!members.length) return false;
      for (const m of members) await this.#kv.del(`link:of:${m}`);
      await this.#kv.del(`link:members:${account}`);
      this.#audit({
        action: "identity.unlinked",
        actor: by,
        details: { account, identity, dissolved: members },
      });
      return true;
    }
    await this.#kv.del(`link:of:${identity}`);
    await this.#kv.update(`link:members:${account}`, (current) =>
      JSON.stringify(this.#decodeMembers(current ?? "[]").filter((m) => m !== identity)),
    );
    this.#audit({ action: "identity.unlinked", actor: by, details: { account, identity } });
    return true;
  }

  /** The links as a kind of person data: exported; erasing an identity unlinks it. */
  personData(): PersonDataKind {
    return {
      name: "links",
      export: async (p) => {
        const linked = await this.linked(p.userKey);
        return linked.identities.length > 1 ? linked : undefined;
      },
      erase: async (p) => {
        let links = (await this.unlink(p.userKey, "system")) ? 1 : 0;
        // The subjects it signed in with: a later sign-in starts afresh.
        for await (const { key, value } of scanKeys(this.#kv, "link:oidc:"))
          if (value === p.userKey && (await this.#kv.del(key))) links++;
        return { links };
      },
    };
  }

  /** Throws the refusal when `joiner` may not join `account` (the same one, or linked elsewhere). */
  async #checkJoinable(joiner: string, account: string): Promise<void> {
    if ((await this.accountOf(joiner)) === account)
      throw this.#refuse(
        joiner,
        account,
        "same",
        "these identities are linked already",
        "Nothing to do.",
      );
    if ((await this.accountOf(joiner)) !== joiner || (await this.#members(joiner)).length)
      throw this.#elsewhere(joiner, account);
  }

  #elsewhere(joiner: string, account: string): LobuError {
    return this.#refuse(
      joiner,
      account,
      "linked_elsewhere",
      `${joiner} is linked to other identities already`,
      "Unlink it on its settings page first, then link again.",
    );
  }

  #refuse(joiner: string, account: string, why: string, message: string, hint: string): LobuError {
    this.#audit({
      action: "identity.link_refused",
      actor: joiner,
      details: { account, reason: why },
    });
    return refused(message, hint);
  }

  async #members(account: string): Promise<string[]> {
    const raw = await this.#kv.get(`link:members:${account}`);
    return raw === null ? [] : this.#decodeMembers(raw);
  }

  #decodeMembers(raw: string): string[] {
    const parsed = Members.safeParse(parseJson(raw));
    return parsed.success ? parsed.data : [];
  }

  async #checkAttempts(confirmer: string): Promise<void> {
    const [mine, all] = await this.#kv.getMany([
      `link:fail:${confirmer}`,
      "link:fail:*installation",
    ]);
    if (
      Number(mine ?? 0) >= MAX_FAILURES_PER_IDENTITY ||
      Number(all ?? 0) >= MAX_FAILURES_PER_INSTALLATION
    )
      throw new LobuError("link_rate_limited", "too many wrong link codes were entered", {
        status: 429,
        hint: "Wait 15 minutes, then create a new code and enter it carefully.",
      });
  }

  async #failed(confirmer: string, reason: "unknown" | "wrong_account"): Promise<void> {
    await this.#kv.incr(`link:fail:${confirmer}`, 1, { ttlMs: FAILURE_WINDOW_MS });
    await this.#kv.incr("link:fail:*installation", 1, { ttlMs: FAILURE_WINDOW_MS });
    this.#audit({ action: "identity.link_failed", actor: confirmer, details: { reason } });
  }
}
