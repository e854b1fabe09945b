import { Hono } from "hono";
import { z } from "zod";
import { callerActor } from "../access/actors.ts";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import { jsonBody } from "../http/errors.ts";
import { notFound } from "../http/refusals.ts";
import type { SecretStore } from "../secrets/store.ts";

const SecretValue = z.strictObject({ value: z.string().min(1).max(16_384) });

/** What the secret routes use. */
export interface SecretRouteDeps {
  agents: Pick<AgentRegistry, "require">;
  secrets: SecretStore;
  audit: Pick<AuditLog, "record">;
}

/**
 * Secrets of one agent (`/agents/:agentId/secrets`: its provider keys and other
 * credentials) and of the installation (`/secrets`: keys for everyone, shared
 * credentials). Values are write-only: only their metadata comes back.
 */
export function secretRoutes(d: SecretRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/agents/:agentId/secrets", listAgentSecrets(d));
  r.put("/agents/:agentId/secrets/:name", setAgentSecret(d));
  r.delete("/agents/:agentId/secrets/:name", deleteAgentSecret(d));
  r.get("/secrets", listInstallationSecrets(d));
  r.put("/secrets/:name", setInstallationSecret(d));
  r.delete("/secrets/:name", deleteInstallationSecret(d));
  return r;
}

function listAgentSecrets(d: SecretRouteDeps) {
  return endpoint("secrets.manage", {}, async (c) => {
    const agentId = (await d.agents.require(c.req.param("agentId") ?? "")).id;
    return c.json({ secrets: await d.secrets.list({ kind: "agent", agentId }) });
  });
}

function setAgentSecret(d: SecretRouteDeps) {
  return endpoint("secrets.manage", {}, async (c) => {
    const agentId = (await d.agents.require(c.req.param("agentId") ?? "")).id;
    const name = c.req.param("name") ?? "";
    const { value } = await jsonBody(c, SecretValue);
    const meta = await d.secrets.set({ scope: { kind: "agent", agentId }, name }, value);
    d.audit.record({ action: "secret.set", actor: callerActor(c), agentId, details: { name } });
    return c.json(meta);
  });
}

function deleteAgentSecret(d: SecretRouteDeps) {
  return endpoint("secrets.manage", {}, async (c) => {
    const agentId = (await d.agents.require(c.req.param("agentId") ?? "")).id;
    const name = c.req.param("name") ?? "";
    if (!(await d.secrets.delete({ scope: { kind: "agent", agentId }, name })))
      throw notFound(`no secret "${name}" on agent ${agentId}`);
    d.audit.record({ action: "secret.deleted", actor: callerActor(c), agentId, details: { name } });
    return c.body(null, 204);
  });
}

function listInstallationSecrets(d: SecretRouteDeps) {
  return endpoint("secrets.manage", {}, async (c) =>
    c.json({ secrets: await d.secrets.list({ kind: "installation" }) }),
  );
}

function setInstallationSecret(d: SecretRouteDeps) {
  return endpoint("secrets.manage", {}, async (c) => {
    const name = c.req.param("name") ?? "";
    const { value } = await jsonBody(c, SecretValue);
    const meta = await d.secrets.set({ scope: { kind: "installation" }, name }, value);
    d.audit.record({
      action: "secret.set",
      actor: callerActor(c),
      details: { name, scope: "installation" },
    });
    return c.json(meta);
  });
}

function deleteInstallationSecret(d: SecretRouteDeps) {
  return endpoint("secrets.manage", {}, async (c) => {
    const name = c.req.param("name") ?? "";
    if (!(await d.secrets.delete({ scope: { kind: "installation" }, name })))
      throw notFound(`no installation secret "${name}"`);
    d.audit.record({
      action: "secret.deleted",
      actor: callerActor(c),
      details: { name, scope: "installation" },
    });
    return c.body(null, 204);
  });
}
