import { Hono } from "hono";
import { requireSession } from "../access/session-auth.ts";
import type { WebSessions } from "../access/web-sessions.ts";
import { boundedBody } from "../http/body-limit.ts";
import { adminCookie, apiHeaders, servePage, WebBundle, webDistDir } from "../http/web.ts";
import { type AdminAccessDeps, accessRoutes } from "./access.ts";
import type { AdminEnv } from "./env.ts";
import { type AdminLinkDeps, linkRoutes } from "./links.ts";
import { type AdminReportDeps, reportRoutes } from "./reports.ts";
import { type AdminSandboxDeps, sandboxRoutes } from "./sandboxes.ts";
import { type AdminSessionDeps, loginRoutes, sessionRoutes } from "./session.ts";

/** The admin API takes small JSON bodies only (its one body is the login's token). */
const API_MAX_BODY_BYTES = 16 * 1024;

/** What the admin UI and its API use: what their parts use. */
export type AdminDeps = AdminSessionDeps &
  AdminSandboxDeps &
  AdminReportDeps &
  AdminAccessDeps &
  AdminLinkDeps & { sessions: Pick<WebSessions, "get"> };

/**
 * The admin UI and its API (mounted at the gateway root). Admins log in with an
 * admin API token (exchanged for a session cookie) or, if listed in
 * `[admin] users`, from their own settings page. Everything here is read-only
 * except stopping a sandbox and the access rules of agents made through the API.
 */
export function adminRoutes(d: AdminDeps, env: NodeJS.ProcessEnv = process.env): Hono {
  const https = () => d.publicUrl.startsWith("https:");
  const bundle = new WebBundle(webDistDir(env));
  const app = new Hono();
  // One React bundle serves both pages; its assets live under /settings/assets.
  app.get("/admin", (c) => servePage(c, bundle, { frameAncestors: [], https: https() }));
  app.get("/admin/", (c) => c.redirect("/admin", 301));
  app.route("/admin/api", adminApi(d, https));
  return app;
}

/** `/admin/api`: JSON only, small bodies (read after the session check), an admin session for all but the login. */
function adminApi(d: AdminDeps, https: () => boolean): Hono<AdminEnv> {
  const cookie = () => adminCookie(https());
  const api = new Hono<AdminEnv>();
  api.use("*", apiHeaders(https));
  api.use("*", boundedBody(API_MAX_BODY_BYTES));
  api.route("/", loginRoutes(d, cookie));

  const needSession = requireSession({
    sessions: d.sessions,
    cookie: cookie(),
    kind: "admin",
    publicUrl: () => d.publicUrl,
    hint: "Log in with an admin API token.",
  });
  api.use("*", (c, next) => (c.req.path === "/admin/api/login" ? next() : needSession(c, next)));

  api.route("/", sessionRoutes(d, cookie));
  api.route("/", reportRoutes(d));
  api.route("/", sandboxRoutes(d));
  api.route("/", accessRoutes(d));
  api.route("/", linkRoutes(d));
  return api;
}
