import type { AgentRow } from "@lobu/core/views";
import { Hono } from "hono";
import { openAccess } from "../agents/access.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import type { Conversations } from "../conversations/records.ts";
import { dayParam, limitParam, textParam } from "../http/query.ts";
import type { UsageReportDeps } from "../usage/report.ts";
import { auditQuery, listUsers, usageSummary } from "./data.ts";
import { type AdminEnv, adminRoute } from "./env.ts";

/** What the admin UI's read-only views use. */
export interface AdminReportDeps {
  agents: Pick<AgentRegistry, "list">;
  conversations: Pick<Conversations, "listConversations">;
  audit: Pick<AuditLog, "usageTotals" | "recent">;
  usage: UsageReportDeps;
}

/** `/agents`, `/users`, `/usage` and `/audit`: what the admin UI shows. */
export function reportRoutes(d: AdminReportDeps): Hono<AdminEnv> {
  const r = new Hono<AdminEnv>();
  r.get("/agents", listAgents(d));
  r.get("/users", listPeople(d));
  r.get("/usage", readUsage(d));
  r.get("/audit", readAudit(d));
  return r;
}

function listAgents(d: AdminReportDeps) {
  return adminRoute({}, async (c) => {
    const agents: AgentRow[] = await Promise.all(
      (await d.agents.list()).map(async (a) => ({
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
        access: a.access ?? openAccess(),
        persona: a.persona ?? null,
        conversations: (await d.conversations.listConversations(a.id, { limit: Infinity })).length,
      })),
    );
    return c.json({ agents });
  });
}

function listPeople(d: AdminReportDeps) {
  return adminRoute({}, async (c) => c.json({ users: await listUsers(d) }));
}

function readUsage(d: AdminReportDeps) {
  return adminRoute({ since: dayParam() }, async (c, { since }) =>
    c.json(await usageSummary(d.usage, since)),
  );
}

function readAudit(d: AdminReportDeps) {
  const query = {
    action: textParam(100),
    actor: textParam(200),
    agent: textParam(63),
    limit: limitParam(200),
  };
  return adminRoute(query, async (c, q) =>
    c.json({
      records: await auditQuery(d, {
        ...(q.action !== undefined ? { action: q.action } : {}),
        ...(q.actor !== undefined ? { actor: q.actor } : {}),
        ...(q.agent !== undefined ? { agentId: q.agent } : {}),
        limit: q.limit,
      }),
    }),
  );
}
