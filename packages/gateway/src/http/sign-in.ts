import type { Context } from "hono";

/**
 * A platform's own way into the settings page, next to claim links: Telegram
 * opens it as a Mini App and proves who the person is with signed initData.
 * Platform plugins provide these; the settings routes mount each one at
 * `POST /settings/api/session/<platform>` and open the session.
 */
export interface SettingsSignIn {
  /** The platform, as in user keys and the route path. */
  readonly platform: string;
  /** How people know it ("Open the settings from Telegram."). */
  readonly label: string;
  /** Origins allowed to frame the settings pages (Telegram Web shows Mini Apps in an iframe). */
  readonly frameAncestors: readonly string[];
  /**
   * Check the proof in the request; returns the person it names. Refuses with a
   * LobuError (and audits the refusal) when the proof is missing, forged,
   * expired or already used.
   */
  verify(c: Context): Promise<SignedIn>;
}

export interface SignedIn {
  userKey: string;
  /** The workspace of the user key (a named Telegram bot's id): whose agent the session opens on. */
  workspace?: string;
  /** Display name from the platform. */
  userName?: string;
}

/** What the gateway gives a sign-in method. */
export interface SignInDeps {
  /** Single-use markers shared by every gateway on the store (a proof opens one session). */
  once: { claim(key: string, ttlMs: number): Promise<boolean> };
  /**
   * Record a refused sign-in (a security event). Paced per action, since
   * anyone can repeat a refused request (AuditLog.recordRefusal).
   */
  audit(entry: { action: string; actor: string; details?: Record<string, unknown> }): void;
}
