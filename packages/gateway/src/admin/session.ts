import { LobuError } from "@lobu/core";
import { type Context, Hono } from "hono";
import { z } from "zod";
import { tokenActor } from "../access/actors.ts";
import type { TokenStore } from "../access/tokens.ts";
import {
  ADMIN_SESSION_TTL_MS,
  type AdminSession,
  type WebSessions,
} from "../access/web-sessions.ts";
import type { AuditLog } from "../audit/log.ts";
import { jsonBody } from "../http/errors.ts";
import { forbidden } from "../http/refusals.ts";
import {
  type CookieSpec,
  clearSessionCookie,
  originAllowed,
  readSessionId,
  setSessionCookie,
} from "../http/web.ts";
import { type AdminEnv, adminRoute } from "./env.ts";

const Login = z.strictObject({ token: z.string().min(1).max(512) });

/** What logging in and out uses. */
export interface AdminSessionDeps {
  /** Read while handling a request (the gateway listens by then). */
  readonly publicUrl: string;
  sessions: Pick<WebSessions, "create" | "delete">;
  tokens: Pick<TokenStore, "verify">;
  audit: Pick<AuditLog, "record" | "recordRefusal">;
}

/**
 * `POST /login`: an admin API token, exchanged for a session cookie (no
 * session needed; configured admins also come in from their settings page).
 */
export function loginRoutes(d: AdminSessionDeps, cookie: () => CookieSpec): Hono {
  const r = new Hono();
  r.post("/login", login(d, cookie));
  return r;
}

function login(d: AdminSessionDeps, cookie: () => CookieSpec) {
  return async (c: Context) => {
    if (!originAllowed(c, d.publicUrl)) throw forbidden("cross-site request refused");
    const { token } = await jsonBody(c, Login);
    const found = await adminToken(d, token.trim());
    const actor = tokenActor(found);
    const { id, session } = await d.sessions.create<AdminSession>(
      { kind: "admin", actor, name: found.name },
      ADMIN_SESSION_TTL_MS,
    );
    setSessionCookie(c, cookie(), id, ADMIN_SESSION_TTL_MS);
    d.audit.record({ action: "admin.session_opened", actor, details: { via: "token" } });
    return c.json({ csrf: session.csrf, name: session.name, expiresAt: session.expiresAt });
  };
}

/** The token, if it is a valid admin token; refuses (and audits the refusal) otherwise. */
async function adminToken(d: AdminSessionDeps, secret: string) {
  const found = await d.tokens.verify(secret);
  if (!found) {
    // Anyone can send a wrong token over and over: paced, so the log keeps its genuine records.
    d.audit.recordRefusal({
      action: "admin.login_refused",
      actor: "unknown",
      details: { reason: "invalid token" },
    });
    throw new LobuError("unauthorized", "invalid or revoked API token", {
      status: 401,
      hint: "Use an admin token: `lobu run` writes one to <data dir>/admin-token.",
    });
  }
  if (found.role !== "admin") {
    d.audit.recordRefusal({
      action: "admin.login_refused",
      actor: tokenActor(found),
      details: { reason: "not admin" },
    });
    throw forbidden(
      "this token is not an admin token",
      "Create one with `lobu token create --role admin`.",
    );
  }
  return found;
}

/** `/session` (what the page needs: its CSRF token) and `/logout`, in a session. */
export function sessionRoutes(d: AdminSessionDeps, cookie: () => CookieSpec): Hono<AdminEnv> {
  const r = new Hono<AdminEnv>();
  r.get("/session", adminRoute({}, readSession));
  r.post("/logout", adminRoute({}, logout(d, cookie)));
  return r;
}

function readSession(c: Context<AdminEnv>): Response {
  const session = c.get("session");
  return c.json({
    csrf: session.csrf,
    name: session.name,
    actor: session.actor,
    expiresAt: session.expiresAt,
  });
}

function logout(d: AdminSessionDeps, cookie: () => CookieSpec) {
  return async (c: Context<AdminEnv>) => {
    await d.sessions.delete(readSessionId(c, cookie()));
    clearSessionCookie(c, cookie());
    return c.json({ ok: true });
  };
}
