import { createHash } from "node:crypto";
import { randomToken } from "@lobu/core";
import type { Origin } from "../domain/origin.ts";
import type { KeyValue } from "../store/port.ts";

/**
 * Password-less access to the settings page and the admin UI.
 *
 * - A claim code is a short-lived, single-use secret in a link the gateway
 *   sends to one person in their chat. It is bound to their user key, agent and
 *   the thread it was sent to; redeeming it (atomically, with `take`) opens a
 *   session.
 * - A session is a random id in an HttpOnly cookie (or, inside a Telegram Mini
 *   App that may run in a cross-site frame, a header); the record lives in the
 *   store with an expiry, so any gateway behind a load balancer can check it
 *   and logging out really ends it.
 * - Each session has its own CSRF token that state-changing requests must echo
 *   in a header.
 *
 * Only SHA-256 digests of codes and session ids are used as store keys, so a
 * dump of the store hands out no live credentials.
 */

export const CLAIM_TTL_MS = 10 * 60_000;
/** How long a used or expired code is remembered, to tell people what happened. */
const CLAIM_MEMORY_MS = 24 * 3_600_000;
export const SETTINGS_SESSION_TTL_MS = 12 * 3_600_000;
export const ADMIN_SESSION_TTL_MS = 8 * 3_600_000;

export interface Claim {
  userKey: string;
  agentId: string;
  origin: Origin;
  /** The capability request this link was made for (the page opens on it). */
  requestId?: string;
  createdAt: number;
  expiresAt: number;
}

export type ClaimLookup =
  | { ok: true; claim: Claim }
  | { ok: false; reason: "used" | "expired" | "unknown" };

export interface SettingsSession {
  kind: "settings";
  userKey: string;
  agentId: string;
  /** Display name of the person (from their chat platform). */
  userName?: string;
  /** Where the claim link was sent (absent for Telegram Mini App logins). */
  origin?: Origin;
  /** How the session was opened: `claim`, or the platform whose sign-in opened it (`telegram`). */
  via: string;
  csrf: string;
  createdAt: number;
  expiresAt: number;
}

export interface AdminSession {
  kind: "admin";
  /** `api:<token id>` or the user key of a configured admin. */
  actor: string;
  name: string;
  csrf: string;
  createdAt: number;
  expiresAt: number;
}

export type WebSession = SettingsSession | AdminSession;

const sha = (value: string) => createHash("sha256").update(value).digest("hex");
const claimKey = (code: string) => `web:claim:${sha(code)}`;
const usedKey = (code: string) => `web:claimused:${sha(code)}`;
const sessionKey = (id: string) => `web:session:${sha(id)}`;
/** Codes and ids are base64url; anything else is rejected before touching the store. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,128}$/;

export class WebSessions {
  private readonly kv: KeyValue;
  private readonly now: () => number;

  constructor(kv: KeyValue, opts: { now?: () => number } = {}) {
    this.kv = kv;
    this.now = opts.now ?? Date.now;
  }

  /** Store a claim for `claim.userKey`; returns the code that goes in the link. */
  async createClaim(
    claim: Omit<Claim, "createdAt" | "expiresAt">,
    ttlMs = CLAIM_TTL_MS,
  ): Promise<string> {
    const code = randomToken(24);
    const now = this.now();
    const full: Claim = { ...claim, createdAt: now, expiresAt: now + ttlMs };
    // The record outlives its validity so an expired link can say "expired".
    await this.kv.set(claimKey(code), JSON.stringify(full), { ttlMs: ttlMs + CLAIM_MEMORY_MS });
    return code;
  }

  /** Look at a claim without using it (the confirmation page). */
  async peekClaim(code: string): Promise<ClaimLookup> {
    if (!TOKEN_SHAPE.test(code)) return { ok: false, reason: "unknown" };
    const raw = await this.kv.get(claimKey(code));
    if (!raw) return { ok: false, reason: (await this.kv.get(usedKey(code))) ? "used" : "unknown" };
    const claim = JSON.parse(raw) as Claim;
    if (claim.expiresAt <= this.now()) return { ok: false, reason: "expired" };
    return { ok: true, claim };
  }

  /** Use a claim: exactly one caller gets it, however many race. */
  async redeemClaim(code: string): Promise<ClaimLookup> {
    if (!TOKEN_SHAPE.test(code)) return { ok: false, reason: "unknown" };
    const raw = await this.kv.take(claimKey(code));
    if (!raw) return { ok: false, reason: (await this.kv.get(usedKey(code))) ? "used" : "unknown" };
    const claim = JSON.parse(raw) as Claim;
    if (claim.expiresAt <= this.now()) return { ok: false, reason: "expired" };
    await this.kv.set(usedKey(code), "1", { ttlMs: CLAIM_MEMORY_MS });
    return { ok: true, claim };
  }

  /** Open a session; returns its id (the cookie value) and the stored record. */
  async create<S extends WebSession>(
    session: Omit<S, "csrf" | "createdAt" | "expiresAt">,
    ttlMs: number,
  ): Promise<{ id: string; session: S }> {
    const id = randomToken(32);
    const now = this.now();
    const full = { ...session, csrf: randomToken(24), createdAt: now, expiresAt: now + ttlMs } as S;
    await this.kv.set(sessionKey(id), JSON.stringify(full), { ttlMs });
    return { id, session: full };
  }

  async get(id: string | undefined): Promise<WebSession | null> {
    if (!id || !TOKEN_SHAPE.test(id)) return null;
    const raw = await this.kv.get(sessionKey(id));
    if (!raw) return null;
    const session = JSON.parse(raw) as WebSession;
    return session.expiresAt > this.now() ? session : null;
  }

  async delete(id: string | undefined): Promise<void> {
    if (id && TOKEN_SHAPE.test(id)) await this.kv.del(sessionKey(id));
  }
}
