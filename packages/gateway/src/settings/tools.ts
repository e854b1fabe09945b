import { ToolPolicy } from "@lobu/core";
import { Hono } from "hono";
import { z } from "zod";
import { jsonBody } from "../http/errors.ts";
import { forbidden } from "../http/refusals.ts";
import {
  agentOf,
  auditChange,
  invalidSetting,
  type PersonDeps,
  type SettingsEnv,
  type SettingsHandler,
  updateSettings,
  viewOf,
} from "./person.ts";
import { toolBase } from "./view.ts";

/** A person settles an "ask" tool; only an admin denies one. */
const ToolChoice = z.strictObject({ policy: ToolPolicy.exclude(["deny"]) });

/** `/tools/:tool`: tool approvals; only tools the agent marks "ask" are the person's to settle. */
export function toolRoutes(d: PersonDeps): Hono<SettingsEnv> {
  const r = new Hono<SettingsEnv>();
  r.put("/tools/:tool", setToolPolicy(d));
  return r;
}

function setToolPolicy(d: PersonDeps): SettingsHandler {
  return async (c) => {
    const tool = c.req.param("tool") ?? "";
    const { policy } = await jsonBody(c, ToolChoice);
    const base = toolBase(d, await agentOf(d, c), tool);
    if (!base) throw invalidSetting(`this agent has no tool "${tool}"`);
    if (base === "deny")
      throw forbidden(`${tool} is disabled by the agent's policy`, "Only an admin can change it.");
    if (base !== "ask") throw invalidSetting(`${tool} is already allowed`);
    await updateSettings(d, c, (cur) => {
      const { [tool]: _old, ...others } = cur.toolPolicy;
      return { ...cur, toolPolicy: policy === "allow" ? { ...others, [tool]: "allow" } : others };
    });
    auditChange(d, c, "tool_policy_set", { tool, policy });
    return viewOf(d, c);
  };
}
