import { Hono } from "hono";
import { requireSession } from "../access/session-auth.ts";
import type { WebSessions } from "../access/web-sessions.ts";
import { boundedBody } from "../http/body-limit.ts";
import { parseQuery } from "../http/query.ts";
import { apiHeaders, WebBundle, webDistDir } from "../http/web.ts";
import { capabilityRoutes } from "./capabilities.ts";
import { type ClaimDeps, claimRoutes } from "./claims.ts";
import { type LinkSettingsDeps, linkSettingsRoutes } from "./links.ts";
import { type McpConnectDeps, mcpConnectRoutes } from "./mcp-connect.ts";
import { type MemorySettingsDeps, memoryRoutes } from "./memory.ts";
import { modelRoutes } from "./model.ts";
import { pageRoutes } from "./pages.ts";
import type { SettingsEnv } from "./person.ts";
import { type PrivacyRouteDeps, privacyRoutes } from "./privacy.ts";
import { type RequestRouteDeps, requestRoutes } from "./requests.ts";
import { type ScheduleSettingsDeps, scheduleRoutes } from "./schedules.ts";
import { secretRoutes } from "./secrets.ts";
import { type SessionRouteDeps, sessionRoutes } from "./session.ts";
import { type SignInRouteDeps, signInPath, signInRoutes } from "./sign-ins.ts";
import { type SettingsSite, settingsSite } from "./site.ts";
import { toolRoutes } from "./tools.ts";

/** The settings API takes small JSON bodies. */
const API_MAX_BODY_BYTES = 64 * 1024;
/**
 * The one settings API route that takes query parameters: the OpenID
 * provider's redirect back (`code`, `state`, `iss`, `error`…), checked by the
 * OpenID client itself (people/oidc.ts).
 */
const OIDC_CALLBACK = "/settings/api/links/oidc/callback";

/** What the settings page and its API use: what their parts use. */
export type SettingsDeps = {
  /** Read while handling a request (the gateway listens by then). */
  readonly publicUrl: string;
  sessions: Pick<WebSessions, "get">;
} & ClaimDeps &
  SignInRouteDeps &
  SessionRouteDeps &
  RequestRouteDeps &
  PrivacyRouteDeps &
  ScheduleSettingsDeps &
  MemorySettingsDeps &
  McpConnectDeps &
  LinkSettingsDeps;

/**
 * The settings page and its API (mounted at the gateway root):
 *
 * - `GET /settings` the React page; `/settings/assets/*` its bundle (pages.ts).
 * - `GET|POST /settings/claim/:code` redeem a one-time link into a session (claims.ts).
 * - `POST /settings/api/session/<platform>` a platform's own proof (a Telegram Mini App's
 *   initData) into a session (sign-ins.ts; see http/sign-in.ts).
 * - `/settings/api/*` the person's settings for their agent (session + CSRF).
 * - `/mcp/connect/:code`, `/mcp/callback` connecting a person's MCP account (mcp-connect.ts).
 *
 * The API channel's settings links (`POST /api/v1/settings-links`) are a REST route: api/.
 */
export function settingsRoutes(d: SettingsDeps, env: NodeJS.ProcessEnv = process.env): Hono {
  const site = settingsSite(d);
  const app = new Hono();
  app.route("/", pageRoutes(site, new WebBundle(webDistDir(env))));
  app.route("/settings/claim", claimRoutes(d, site));
  app.route("/settings/api", settingsApi(d, site));
  app.route("/mcp", mcpConnectRoutes(d, site));
  return app;
}

/** `/settings/api`: JSON only, small bodies, and a person's session for all but the sign-ins. */
function settingsApi(d: SettingsDeps, site: SettingsSite): Hono<SettingsEnv> {
  const api = new Hono<SettingsEnv>();
  api.use(
    "*",
    apiHeaders(() => site.https),
  );
  api.use("*", boundedBody(API_MAX_BODY_BYTES));
  // Query parameters are validated one way (http/query.ts): these routes take none.
  api.use("*", (c, next) => {
    if (c.req.path !== OIDC_CALLBACK) parseQuery(c, {});
    return next();
  });
  api.route("/", signInRoutes(d, site));

  const signIns = new Set(d.signIns.map((signIn) => `/settings/api${signInPath(signIn)}`));
  const needSession = requireSession({
    sessions: d.sessions,
    cookie: site.cookie,
    kind: "settings",
    publicUrl: () => d.publicUrl,
    hint: "Open your settings from the chat: send `settings` to the bot for a new link.",
  });
  // Everything but the platforms' sign-ins needs a session (and CSRF on changes).
  api.use("*", (c, next) => (signIns.has(c.req.path) ? next() : needSession(c, next)));

  api.route("/", sessionRoutes(d, site));
  api.route("/", modelRoutes(d));
  api.route("/", secretRoutes(d));
  api.route("/", capabilityRoutes(d));
  api.route("/", toolRoutes(d));
  api.route("/", requestRoutes(d));
  api.route("/", privacyRoutes(d));
  api.route("/", scheduleRoutes(d));
  api.route("/", memoryRoutes(d));
  api.route("/", linkSettingsRoutes(d));
  return api;
}
