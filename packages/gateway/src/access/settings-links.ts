import { type Origin, userKeyOf } from "../domain/origin.ts";
import type { GatewayServices } from "../services.ts";
import { WebSessions } from "./web-sessions.ts";

/**
 * A link that opens the settings page for the person behind `origin` (on the
 * capability request it was made for, if any). The link carries a single-use claim code
 * (valid 10 minutes) bound to that person, the agent and the thread it was
 * sent to: whoever else gets hold of it after it was used gets nothing.
 *
 * Without `agentId` the link is for the agent the platform routes to by
 * default (`[platforms.<name>].agent`, else the default agent).
 */
export async function createSettingsLink(
  services: Pick<GatewayServices, "publicUrl" | "store" | "agents" | "config">,
  origin: Origin,
  opts: { agentId?: string; requestId?: string } = {},
): Promise<string> {
  const agentId = opts.agentId ?? (await defaultAgentFor(services, origin.platform));
  const code = await new WebSessions(services.store.kv).createClaim({
    userKey: userKeyOf(origin),
    agentId,
    origin,
    ...(opts.requestId ? { requestId: opts.requestId } : {}),
  });
  return `${services.publicUrl}/settings/claim/${code}`;
}

/** The agent a platform's messages go to when they do not name one. */
export async function defaultAgentFor(
  services: Pick<GatewayServices, "agents" | "config">,
  platform: string,
): Promise<string> {
  const configured = services.config.platforms[platform]?.agent;
  if (typeof configured === "string" && (await services.agents.get(configured))) return configured;
  return (await services.agents.defaultAgent()).id;
}
