import { createHash } from "node:crypto";
import { randomToken } from "@lobu/core";
import type { Logger } from "pino";
import { z } from "zod";
import { Origin } from "../domain/origin.ts";
import type { KeyValue } from "../store/port.ts";
import { readRecord } from "../util/stored-record.ts";

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
 * dump of the store hands out no live credentials. An unreadable claim or
 * session record (logged) opens nothing: it reads as unknown.
 */

export const CLAIM_TTL_MS = 10 * 60_000;
/** How long a used or expired code is remembered, to tell people what happened. */
const CLAIM_MEMORY_MS = 24 * 3_600_000;
export const SETTINGS_SESSION_TTL_MS = 12 * 3_600_000;
export const ADMIN_SESSION_TTL_MS = 8 * 3_600_000;

/** Stored as `web:claim:<sha256 of the code>`. */
export const Claim = z.object({
  userKey: z.string().min(1),
  agentId: z.string().min(1),
  origin: Origin,
  /** The capability request this link was made for (the page opens on it). */
  requestId: z.string().optional(),
  createdAt: z.number(),
  expiresAt: z.number(),
});
export type Claim = z.infer<typeof Claim>;

export type ClaimLookup =
  | { ok: true; claim: Claim }
  | { ok: false; reason: "used" | "expired" | "unknown" };

export const SettingsSession = z.object({
  kind: z.literal("settings"),
  userKey: z.string().min(1),
  agentId: z.string().min(1),
  /** Display name of the person (from their chat platform). */
  userName: z.string().optional(),
  /** Where the claim link was sent (absent for Telegram Mini App logins). */
  origin: Origin.optional(),
  /** How the session was opened: `claim`, or the platform whose sign-in opened it (`telegram`). */
  via: z.string(),
  csrf: z.string().min(1),
  createdAt: z.number(),
  expiresAt: z.number(),
});
export type SettingsSession = z.infer<typeof SettingsSession>;

export const AdminSession = z.object({
  kind: z.literal("admin"),
  /** `api:<token id>` or the user key of a configured admin. */
  actor: z.string().min(1),
  name: z.string(),
  csrf: z.string().min(1),
  createdAt: z.number(),
  expiresAt: z.number(),
});
export type AdminSession = z.infer<typeof AdminSession>;

/** Stored as `web:session:<sha256 of the session id>`. */
export const WebSession = z.discriminatedUnion("kind", [SettingsSession, AdminSession]);
export type WebSession = z.infer<typeof WebSession>;

const sha = (value: string) => createHash("sha256").update(value).digest("hex");
const claimKey = (code: string) => `web:claim:${sha(code)}`;
const usedKey = (code: string) => `web:claimused:${sha(code)}`;
const sessionKey = (id: string) => `web:session:${sha(id)}`;
/** Codes and ids are base64url; anything else is rejected before touching the store. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{16,128}$/;

export class WebSessions {
  private readonly kv: KeyValue;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(kv: KeyValue, log: Logger, opts: { now?: () => number } = {}) {
    this.kv = kv;
    this.log = log;
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
    const claim = this.#claim(code, raw);
    if (!claim) return { ok: false, reason: "unknown" };
    if (claim.expiresAt <= this.now()) return { ok: false, reason: "expired" };
    return { ok: true, claim };
  }

  /** Use a claim: exactly one caller gets it, however many race. */
  async redeemClaim(code: string): Promise<ClaimLookup> {
    if (!TOKEN_SHAPE.test(code)) return { ok: false, reason: "unknown" };
    const raw = await this.kv.take(claimKey(code));
    if (!raw) return { ok: false, reason: (await this.kv.get(usedKey(code))) ? "used" : "unknown" };
    const claim = this.#claim(code, raw);
    if (!claim) return { ok: false, reason: "unknown" };
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
    const source = { record: "web session", key: sessionKey(id) };
    const session = readRecord(WebSession, raw, source, this.log, "refused");
    return session && session.expiresAt > this.now() ? session : null;
  }

  async delete(id: string | undefined): Promise<void> {
    if (id && TOKEN_SHAPE.test(id)) await this.kv.del(sessionKey(id));
  }

  #claim(code: string, raw: string): Claim | undefined {
    const source = { record: "settings claim", key: claimKey(code) };
    return readRecord(Claim, raw, source, this.log, "it reads as unknown");
  }
}
