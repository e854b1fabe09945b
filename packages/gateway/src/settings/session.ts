import type { LobuConfig } from "@lobu/core";
import { type Context, Hono } from "hono";
import { personActor } from "../access/actors.ts";
import { mayOpenAdminUi } from "../access/permissions.ts";
import {
  ADMIN_SESSION_TTL_MS,
  type AdminSession,
  SETTINGS_SESSION_TTL_MS,
  type SettingsSession,
  type WebSessions,
} from "../access/web-sessions.ts";
import type { AuditLog } from "../audit/log.ts";
import { forbidden } from "../http/refusals.ts";
import { adminCookie, clearSessionCookie, readSessionId, setSessionCookie } from "../http/web.ts";
import {
  type PersonDeps,
  type SettingsContext,
  type SettingsEnv,
  type SettingsHandler,
  viewOf,
} from "./person.ts";
import type { SettingsSite } from "./site.ts";

/** A person who is opening the settings page, as the session records them. */
export type Opening = Omit<SettingsSession, "kind" | "csrf" | "createdAt" | "expiresAt">;

/**
 * Open a settings session (a claim link or a platform's sign-in proved who
 * this is), set its cookie and audit it.
 */
export async function openSettingsSession(
  d: { sessions: Pick<WebSessions, "create">; audit: Pick<AuditLog, "record"> },
  c: Context,
  site: SettingsSite,
  person: Opening,
): Promise<{ id: string; session: SettingsSession }> {
  const opened = await d.sessions.create<SettingsSession>(
    { kind: "settings", ...person },
    SETTINGS_SESSION_TTL_MS,
  );
  setSessionCookie(c, site.cookie, opened.id, SETTINGS_SESSION_TTL_MS);
  d.audit.record({
    action: "settings.session_opened",
    actor: personActor(person),
    agentId: person.agentId,
    details: { via: person.via },
  });
  return opened;
}

/** What the session routes use. */
export interface SessionRouteDeps extends PersonDeps {
  config: LobuConfig;
  sessions: Pick<WebSessions, "create" | "delete">;
}

/**
 * The person's session: what it is (`/session`, for the page's CSRF token),
 * ending it, the page's whole view (`/state`), and, for configured admins,
 * the way into the admin UI.
 */
export function sessionRoutes(d: SessionRouteDeps, site: SettingsSite): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.get("/session", readSession);
  r.post("/logout", logout(d, site));
  r.get("/state", (c) => viewOf(d, c));
  r.post("/admin-login", openAdminUi(d, site));
  return r;
}

function readSession(c: SettingsContext): Response {
  const session = c.get("session");
  return c.json({
    csrf: session.csrf,
    userKey: session.userKey,
    agentId: session.agentId,
    expiresAt: session.expiresAt,
    via: session.via,
  });
}

function logout(d: SessionRouteDeps, site: SettingsSite): SettingsHandler {
  return async (c) => {
    await d.sessions.delete(readSessionId(c, site.cookie));
    clearSessionCookie(c, site.cookie);
    return c.json({ ok: true });
  };
}

/** Configured admins ([admin] users) open the admin UI from here, no token needed. */
function openAdminUi(d: SessionRouteDeps, site: SettingsSite): SettingsHandler {
  return async (c) => {
    const session = c.get("session");
    if (!mayOpenAdminUi(d.config, session.userKey))
      throw forbidden(
        "you are not an admin of this gateway",
        "Admins are listed in [admin] users; api users minted by client tokens never are.",
      );
    const { id } = await d.sessions.create<AdminSession>(
      { kind: "admin", actor: personActor(session), name: session.userName ?? session.userKey },
      ADMIN_SESSION_TTL_MS,
    );
    setSessionCookie(c, adminCookie(site.https), id, ADMIN_SESSION_TTL_MS);
    d.audit.record({
      action: "admin.session_opened",
      actor: personActor(session),
      details: { via: "settings" },
    });
    return c.json({ ok: true, redirect: "/admin" });
  };
}
