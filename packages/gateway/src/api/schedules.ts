import { Hono } from "hono";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { authorizeFor, inScope } from "../access/permissions.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import { textParam } from "../http/query.ts";
import { notFound } from "../http/refusals.ts";
import { type ScheduleStore, scheduleView } from "../schedules/records.ts";

/** What the schedule routes use. */
export interface ScheduleRouteDeps {
  agents: Pick<AgentRegistry, "require">;
  schedules: Pick<ScheduleStore, "listAll" | "find" | "cancel">;
}

/**
 * An agent's schedules (set by people with the `schedule` tool): listed and
 * cancelled for the people the token acts for (roles matrix: `schedules.*`).
 */
export function scheduleRoutes(d: ScheduleRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/agents/:agentId/schedules", listSchedules(d));
  r.delete("/agents/:agentId/schedules/:scheduleId", cancelSchedule(d));
  return r;
}

function listSchedules(d: ScheduleRouteDeps) {
  return endpoint(
    "schedules.read",
    { user: textParam(200) },
    async (c, { token, access, query }) => {
      const agentId = (await d.agents.require(c.req.param("agentId") ?? "")).id;
      const all = await d.schedules.listAll(agentId);
      const mine = access === "all" ? all : all.filter((s) => inScope(token, s.origin));
      const picked =
        query.user === undefined ? mine : mine.filter((s) => s.origin.userId === query.user);
      return c.json({
        schedules: picked.map((s) => ({
          ...scheduleView(s),
          agentId: s.agentId,
          userKey: s.userKey,
        })),
      });
    },
  );
}

function cancelSchedule(d: ScheduleRouteDeps) {
  return endpoint("schedules.cancel", {}, async (c, { token }) => {
    const agentId = (await d.agents.require(c.req.param("agentId") ?? "")).id;
    const id = c.req.param("scheduleId") ?? "";
    const schedule = await d.schedules.find(agentId, id);
    if (!schedule) throw notFound(`agent ${agentId} has no schedule "${id.slice(0, 64)}"`);
    authorizeFor(token, "schedules.cancel", schedule.origin, `schedule ${id}`);
    await d.schedules.cancel(agentId, schedule.userKey, id);
    return c.body(null, 204);
  });
}
