import type { LobuConfig } from "@lobu/core";
import { Hono } from "hono";
import { callerActor } from "../access/actors.ts";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import type { TurnContextBuilder } from "../agents/context.ts";
import { withEffectiveModels } from "../agents/effective.ts";
import { checkAgentInput } from "../agents/references.ts";
import { AgentInput, AgentPatch, type AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import { jsonBody } from "../http/errors.ts";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { SkillCatalog } from "../skills/catalog.ts";

/** What the agent routes use. */
export interface AgentRouteDeps {
  config: LobuConfig;
  agents: AgentRegistry;
  /** The model each agent runs on (agent listing). */
  contexts: TurnContextBuilder;
  /** Agents are checked against the providers and skills they name. */
  providers: ProviderRegistry;
  skills: SkillCatalog;
  audit: Pick<AuditLog, "record">;
}

/** `/api/v1/agents`: the agents themselves (their secrets, messages and conversations have their own routes). */
export function agentRoutes(d: AgentRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/", listAgents(d));
  r.post("/", createAgent(d));
  r.get("/:agentId", readAgent(d));
  r.patch("/:agentId", updateAgent(d));
  r.delete("/:agentId", deleteAgent(d));
  return r;
}

function listAgents(d: AgentRouteDeps) {
  return endpoint("agents.read", {}, async (c) =>
    c.json({ agents: await withEffectiveModels(await d.agents.list(), d.contexts) }),
  );
}

function createAgent(d: AgentRouteDeps) {
  return endpoint("agents.manage", {}, async (c) => {
    const input = await jsonBody(c, AgentInput);
    checkAgentInput(input, d.providers, d.skills, d.config.network.allow_public_suffixes);
    const agent = await d.agents.create(input);
    d.audit.record({ action: "agent.created", actor: callerActor(c), agentId: agent.id });
    return c.json(agent, 201);
  });
}

function readAgent(d: AgentRouteDeps) {
  return endpoint("agents.read", {}, async (c) =>
    c.json(await d.agents.require(c.req.param("agentId") ?? "")),
  );
}

function updateAgent(d: AgentRouteDeps) {
  return endpoint("agents.manage", {}, async (c) => {
    const patch = await jsonBody(c, AgentPatch);
    checkAgentInput(patch, d.providers, d.skills, d.config.network.allow_public_suffixes);
    const agent = await d.agents.update(c.req.param("agentId") ?? "", patch);
    d.audit.record({ action: "agent.updated", actor: callerActor(c), agentId: agent.id });
    return c.json(agent);
  });
}

function deleteAgent(d: AgentRouteDeps) {
  return endpoint("agents.manage", {}, async (c) => {
    const agentId = c.req.param("agentId") ?? "";
    await d.agents.delete(agentId);
    d.audit.record({ action: "agent.deleted", actor: callerActor(c), agentId });
    return c.body(null, 204);
  });
}
