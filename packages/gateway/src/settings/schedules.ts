import { Hono } from "hono";
import { notFound } from "../http/refusals.ts";
import { type ScheduleStore, scheduleView } from "../schedules/records.ts";
import { auditChange, type PersonDeps, type SettingsEnv, type SettingsHandler } from "./person.ts";

/** What the schedule routes use. */
export interface ScheduleSettingsDeps {
  schedules: Pick<ScheduleStore, "listFor" | "cancel">;
  audit: PersonDeps["audit"];
}

/** `/schedules`: the person's schedules with the session's agent; they can cancel each. */
export function scheduleRoutes(d: ScheduleSettingsDeps): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.get("/schedules", listSchedules(d));
  r.delete("/schedules/:id", cancelSchedule(d));
  return r;
}

function listSchedules(d: ScheduleSettingsDeps): SettingsHandler {
  return async (c) => {
    const { agentId, userKey } = c.get("session");
    return c.json({ schedules: (await d.schedules.listFor(agentId, userKey)).map(scheduleView) });
  };
}

function cancelSchedule(d: ScheduleSettingsDeps): SettingsHandler {
  return async (c) => {
    const { agentId, userKey } = c.get("session");
    const id = c.req.param("id") ?? "";
    if (!(await d.schedules.cancel(agentId, userKey, id)))
      throw notFound(`you have no schedule "${id.slice(0, 64)}"`);
    auditChange(d, c, "schedule_cancelled", { scheduleId: id });
    return c.json({ schedules: (await d.schedules.listFor(agentId, userKey)).map(scheduleView) });
  };
}
