import { createHash, randomInt } from "node:crypto";
import { LobuError } from "@lobu/core";
import { z } from "zod";
import type { AuditRecord } from "../audit/log.ts";
import type { AccountOf } from "../domain/accounts.ts";
import type { PersonDataKind } from "../domain/person-data.ts";
import type { KeyValue } from "../store/port.ts";
import { scanKeys } from "../store/scan.ts";

/**
 * One person across platforms: identities (user keys `platform:workspace:user`)
 * linked into one account. The account is the user key of the identity the
 * first link code came from (its *primary*); every other identity of the
 * account points at it. Links are one level deep: a primary never points
 * anywhere, so there are no chains and no cycles.
 *
 * Linking takes proof on both sides (docs/identity.md):
 * - a **link code** is created by one identity (signed in on its platform or
 *   its settings page) and proves that identity: single-use, 10 minutes,
 *   stored only as a digest;
 * - the **confirming** identity is whoever sends `link <code>` (or enters it
 *   on its own settings page): the platform or the session proves it.
 * The confirming identity joins the creator's account, never the other way
 * round: a code that leaks (forwarded, read over a shoulder) can only pull
 * the reader's own identity into the creator's account, never the creator's
 * identity into the reader's.
 *
 * Keys: `link:of:<user key>` → primary (members only), `link:members:<primary>`
 * → JSON list of members, `link:code:<sha256>` → the code's record.
 */

/** Crockford base32 without I, L, O, U: readable aloud, typed without confusion. */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** 10 symbols = 50 bits: with the attempt limits below, guessing is hopeless. */
const CODE_CHARS = 10;
export const LINK_CODE_TTL_MS = 10 * 60_000;
/** Failed confirmations one identity may make per window, and the installation as a whole. */
const MAX_FAILURES_PER_IDENTITY = 5;
const MAX_FAILURES_PER_INSTALLATION = 100;
const FAILURE_WINDOW_MS = 15 * 60_000;
/** Codes one identity may create per window (each replaces the previous one). */
const MAX_CODES_PER_IDENTITY = 10;
/** Identities one account may hold, its primary included. */
export const MAX_IDENTITIES = 20;

const LinkCode = z.object({
  /** The identity that created the code (and proved itself doing so). */
  creator: z.string(),
  expiresAt: z.number(),
});

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
    let code = "";
    for (let i = 0; i < CODE_CHARS; i++) code += ALPHABET[randomInt(ALPHABET.length)];
    const expiresAt = this.#now() + LINK_CODE_TTL_MS;
    const hash = digest(code);
    const previous = await this.#kv.get(`link:codeby:${creator}`);
    if (previous) await this.#kv.del(`link:code:${previous}`);
    await this.#kv.set(`link:code:${hash}`, JSON.stringify({ creator, expiresAt }), {
      ttlMs: LINK_CODE_TTL_MS,
    });
    await this.#kv.set(`link:codeby:${creator}`, hash, { ttlMs: LINK_CODE_TTL_MS });
    this.#audit({ action: "identity.link_code_created", actor: creator });
    return { code: display(code), expiresAt };
  }

  /**
   * Link `confirmer` (proven by the caller) into the account of the code's
   * creator. The code is consumed by the first attempt that names it, good
   * or refused, so it can never be used twice. Refused when the confirmer is
   * linked already (unlink it first: nothing is moved silently), is the
   * creator, or the account is full.
   */
  async confirm(confirmer: string, input: string): Promise<LinkedAccount> {
    await this.#checkAttempts(confirmer);
    const code = normalizeLinkCode(input);
    const raw =
      code.length === CODE_CHARS && [...code].every((ch) => ALPHABET.includes(ch))
        ? await this.#kv.take(`link:code:${digest(code)}`)
        : null;
    const parsed = raw === null ? undefined : LinkCode.safeParse(parseJson(raw));
    if (!parsed?.success || parsed.data.expiresAt <= this.#now()) {
      await this.#failed(confirmer);
      throw invalidCode();
    }
    const { creator } = parsed.data;
    await this.#kv.del(`link:codeby:${creator}`);
    return this.#join(confirmer, creator, { codeBy: creator });
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
    const refuse = (why: string, message: string, hint: string) => {
      this.#audit({
        action: "identity.link_refused",
        actor: joiner,
        details: { account, reason: why },
      });
      return refused(message, hint);
    };
    if ((await this.accountOf(joiner)) === account)
      throw refuse("same", "these identities are linked already", "Nothing to do.");
    const elsewhere = () =>
      refuse(
        "linked_elsewhere",
        `${joiner} is linked to other identities already`,
        "Unlink it on its settings page first, then link again.",
      );
    if ((await this.#members(joiner)).length) throw elsewhere();
    // The claim: of two links made at once for one identity, one wins.
    if (!(await this.#kv.set(`link:of:${joiner}`, account, { ifNotExists: true })))
      throw elsewhere();
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
        ? refuse(
            "full",
            `an account holds at most ${MAX_IDENTITIES} identities`,
            "Unlink one you no longer use first.",
          )
        : refuse("changed", "the account changed while linking", "Try again.");
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

  async #failed(confirmer: string): Promise<void> {
    await this.#kv.incr(`link:fail:${confirmer}`, 1, { ttlMs: FAILURE_WINDOW_MS });
    await this.#kv.incr("link:fail:*installation", 1, { ttlMs: FAILURE_WINDOW_MS });
    this.#audit({ action: "identity.link_failed", actor: confirmer });
  }
}
