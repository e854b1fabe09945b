import { type LobuConfig, LobuError } from "@lobu/core";
import type { AgentRow, SandboxesView } from "@lobu/core/views";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { requireSession } from "../access/session-auth.ts";
import type { TokenStore } from "../access/tokens.ts";
import {
  ADMIN_SESSION_TTL_MS,
  type AdminSession,
  type WebSessions,
} from "../access/web-sessions.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import type { Conversations } from "../conversations/records.ts";
import { jsonBody } from "../http/errors.ts";
import { dayParam, limitParam, parseQuery, textParam } from "../http/query.ts";
import {
  adminCookie,
  apiHeaders,
  clearSessionCookie,
  forbidden,
  originAllowed,
  readSessionId,
  servePage,
  setSessionCookie,
  WebBundle,
  webDistDir,
} from "../http/web.ts";
import type { SandboxManager } from "../runtime/sandbox-manager.ts";
import type { UsageReportDeps } from "../usage/report.ts";
import { auditQuery, listUsers, usageSummary } from "./data.ts";

type Env = { Variables: { session: AdminSession } };

const Login = z.strictObject({ token: z.string().min(1).max(512) });

/** What the admin UI and its API use. */
export interface AdminDeps {
  config: LobuConfig;
  /** Read while handling a request (the gateway listens by then). */
  readonly publicUrl: string;
  sessions: WebSessions;
  tokens: Pick<TokenStore, "verify">;
  agents: Pick<AgentRegistry, "list">;
  conversations: Pick<Conversations, "listConversations">;
  sandboxes: SandboxManager;
  audit: AuditLog;
  usage: UsageReportDeps;
}

/**
 * The admin UI and its API (mounted at the gateway root). Admins log in with an
 * admin API token (exchanged for a session cookie) or, if listed in
 * `[admin] users`, from their own settings page. Everything here is read-only
 * except stopping a sandbox.
 */
export function adminRoutes(s: AdminDeps, env: NodeJS.ProcessEnv = process.env): Hono {
  const app = new Hono();
  const sessions = s.sessions;
  const bundle = new WebBundle(webDistDir(env));
  const https = () => s.publicUrl.startsWith("https:");
  const cookie = () => adminCookie(https());

  // One React bundle serves both pages; its assets live under /settings/assets.
  app.get("/admin", (c) => servePage(c, bundle, { frameAncestors: [], https: https() }));
  app.get("/admin/", (c) => c.redirect("/admin", 301));

  const api = new Hono<Env>();
  api.use("*", apiHeaders(https));
  api.use(
    "*",
    bodyLimit({
      maxSize: 16 * 1024,
      onError: () => {
        throw new LobuError("payload_too_large", "request body too large", { status: 413 });
      },
    }),
  );

  api.post("/login", async (c) => {
    if (!originAllowed(c, s.publicUrl)) throw forbidden("cross-site request refused");
    const { token } = await jsonBody(c, Login);
    const found = await s.tokens.verify(token.trim());
    if (!found) {
      s.audit.record({
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
      s.audit.record({
        action: "admin.login_refused",
        actor: `api:${found.id}`,
        details: { reason: "not admin" },
      });
      throw forbidden(
        "this token is not an admin token",
        "Create one with `lobu token create --role admin`.",
      );
    }
    const { id, session } = await sessions.create<AdminSession>(
      { kind: "admin", actor: `api:${found.id}`, name: found.name },
      ADMIN_SESSION_TTL_MS,
    );
    setSessionCookie(c, cookie(), id, ADMIN_SESSION_TTL_MS);
    s.audit.record({
      action: "admin.session_opened",
      actor: `api:${found.id}`,
      details: { via: "token" },
    });
    return c.json({ csrf: session.csrf, name: session.name, expiresAt: session.expiresAt });
  });

  const needSession = requireSession({
    sessions,
    cookie: cookie(),
    kind: "admin",
    publicUrl: () => s.publicUrl,
    hint: "Log in with an admin API token.",
  });
  api.use("*", (c, next) => (c.req.path === "/admin/api/login" ? next() : needSession(c, next)));
  // Query parameters are checked like the REST API's (http/query.ts): /usage and /audit
  // declare theirs below; the other routes take none, so anything there is a 400.
  const ownQuery = new Set(["/admin/api/usage", "/admin/api/audit"]);
  api.use("*", async (c, next) => {
    if (!ownQuery.has(c.req.path)) parseQuery(c, {});
    await next();
  });

  api.get("/session", (c) => {
    const session = c.get("session");
    return c.json({
      csrf: session.csrf,
      name: session.name,
      actor: session.actor,
      expiresAt: session.expiresAt,
    });
  });
  api.post("/logout", async (c) => {
    await sessions.delete(readSessionId(c, cookie()));
    clearSessionCookie(c, cookie());
    return c.json({ ok: true });
  });

  api.get("/agents", async (c) => {
    const agents: AgentRow[] = await Promise.all(
      (await s.agents.list()).map(async (a) => ({
        id: a.id,
        name: a.name,
        description: a.description,
        source: a.source,
        provider: a.provider ?? null,
        model: a.model ?? null,
        tools: a.tools,
        skills: a.skills,
        policy: a.policy,
        network: a.network,
        conversations: (await s.conversations.listConversations(a.id, { limit: Infinity })).length,
      })),
    );
    return c.json({ agents });
  });
  api.get("/users", async (c) => c.json({ users: await listUsers(s) }));
  api.get("/sandboxes", async (c) => {
    const list = await s.sandboxes.list();
    list.sort((a, b) => b.lastActiveAt - a.lastActiveAt);
    const view: SandboxesView = {
      driver: s.sandboxes.driverName,
      running: s.sandboxes.runningCount,
      limits: {
        memoryMb: s.config.sandbox.memory_mb,
        diskMb: s.config.sandbox.disk_mb,
        cpus: s.config.sandbox.cpus,
      },
      sandboxes: list,
    };
    return c.json(view);
  });
  api.post("/sandboxes/:id/stop", async (c) => {
    const id = c.req.param("id");
    if (!(await s.sandboxes.record(id)))
      throw new LobuError("not_found", "no such sandbox", { status: 404 });
    const stopped = await s.sandboxes.stop(id, "operator");
    s.audit.record({ action: "sandbox.stopped", actor: c.get("session").actor, sandboxId: id });
    return c.json({ stopped });
  });
  api.get("/usage", async (c) => {
    const { since } = parseQuery(c, { since: dayParam() });
    return c.json(await usageSummary(s.usage, since));
  });
  api.get("/audit", async (c) => {
    const query = parseQuery(c, {
      action: textParam(100),
      actor: textParam(200),
      agent: textParam(63),
      limit: limitParam(200),
    });
    return c.json({
      records: await auditQuery(s, {
        ...(query.action !== undefined ? { action: query.action } : {}),
        ...(query.actor !== undefined ? { actor: query.actor } : {}),
        ...(query.agent !== undefined ? { agentId: query.agent } : {}),
        limit: query.limit,
      }),
    });
  });

  app.route("/admin/api", api);
  return app;
}
