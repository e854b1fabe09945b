import type { ChannelRow } from "@lobu/core/views";
import { Hono } from "hono";
import type { AgentRegistry } from "../agents/registry.ts";
import { AgentInput } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import { jsonBody } from "../http/errors.ts";
import { type AdminEnv, adminRoute } from "./env.ts";

/** What the admin UI's access and channel views use. */
export interface AdminAccessDeps {
  agents: Pick<AgentRegistry, "channels" | "update">;
  audit: Pick<AuditLog, "record">;
}

/** The body of PUT /agents/:id/access: the agent's whole rule set. */
const AccessBody = AgentInput.shape.access.unwrap();

/**
 * `/channels` (the `[channels.*]` bindings, read-only: lobu.toml is their
 * source) and `PUT /agents/:id/access`: the access rules of an agent made
 * through the API (stored, so editable at run time). An agent defined in
 * lobu.toml is refused with `agent_read_only`: its file says who may use it.
 */
export function accessRoutes(d: AdminAccessDeps): Hono<AdminEnv> {
  const r = new Hono<AdminEnv>();
  r.get("/channels", listChannels(d));
  r.put("/agents/:id/access", putAccess(d));
  return r;
}

function listChannels(d: AdminAccessDeps) {
  return adminRoute({}, (c) => {
    const channels: ChannelRow[] = d.agents.channels.list().map(({ channel, section: s }) => ({
      channel,
      agent: s.agent ?? null,
      persona: s.persona
        ? {
            ...(s.persona.name ? { name: s.persona.name } : {}),
            ...(s.persona.icon_url ? { iconUrl: s.persona.icon_url } : {}),
          }
        : null,
      model: s.model ?? null,
      systemPrompt: s.system_prompt !== undefined,
      tools: s.tools ?? null,
      ambient: {
        mode: s.ambient.mode,
        keywords: s.ambient.keywords,
        perMinute: s.ambient.per_minute,
      },
    }));
    return c.json({ channels });
  });
}

function putAccess(d: AdminAccessDeps) {
  return adminRoute({}, async (c) => {
    const id = c.req.param("id") ?? "";
    const access = await jsonBody(c, AccessBody);
    const agent = await d.agents.update(id, { access });
    d.audit.record({
      action: "agent.access_changed",
      actor: c.get("session").actor,
      agentId: agent.id,
      details: {
        allow: counts(access.allow),
        deny: counts(access.deny),
        directMessages: access.directMessages,
        guests: access.guests,
        externalChannels: access.externalChannels.length,
      },
    });
    return c.json({ access: agent.access });
  });
}

/** How many entries each list has (the audit record names no people). */
function counts(l: Record<string, string[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(l).map(([k, v]) => [k, v.length]));
}
