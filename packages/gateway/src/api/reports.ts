import { Hono } from "hono";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import type { AuditLog } from "../audit/log.ts";
import { dayParam, limitParam, textParam } from "../http/query.ts";
import { type UsageReportDeps, usageSummary } from "../usage/report.ts";

/** What the audit and usage reports use. */
export interface ReportRouteDeps {
  audit: Pick<AuditLog, "recent">;
  usage: UsageReportDeps;
}

/** `/api/v1/audit` and `/api/v1/usage`. */
export function reportRoutes(d: ReportRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/audit", readAudit(d));
  r.get("/usage", readUsage(d));
  return r;
}

function readAudit(d: ReportRouteDeps) {
  return endpoint(
    "audit.read",
    { limit: limitParam(100), action: textParam(100) },
    async (c, { query }) =>
      c.json({
        records: await d.audit.recent({
          limit: query.limit,
          ...(query.action !== undefined ? { action: query.action } : {}),
        }),
      }),
  );
}

function readUsage(d: ReportRouteDeps) {
  return endpoint("usage.read", { since: dayParam() }, async (c, { query }) => {
    // `usage` is the daily rows (its name since v1); the rest as in the admin UI's report.
    const { daily, ...report } = await usageSummary(d.usage, query.since);
    return c.json({ usage: daily, ...report });
  });
}
