import { Hono } from "hono";
import { z } from "zod";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { apiOrigin } from "../access/permissions.ts";
import type { SettingsLinks } from "../access/settings-links.ts";
import { CLAIM_TTL_MS } from "../access/web-sessions.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import { jsonBody } from "../http/errors.ts";

const LinkRequest = z.strictObject({
  /** The end user, as in POST /api/v1/agents/:id/messages. */
  user: z.string().min(1).max(200),
  channel: z.string().min(1).max(200).default("default"),
  userName: z.string().max(200).optional(),
  agent: z.string().max(63).optional(),
});

/** What the settings-link route uses. */
export interface SettingsLinkRouteDeps {
  agents: Pick<AgentRegistry, "require">;
  settingsLinks: Pick<SettingsLinks, "create">;
}

/**
 * `/api/v1/settings-links`: an app integrating Lobu hands its user a one-time
 * link to their settings page (the API channel's `settings` command). The
 * link is for a person the token acts for: client and user tokens mint links
 * only for the api users of their namespace (never api::<user>, which may be
 * an admin).
 */
export function settingsLinkRoutes(d: SettingsLinkRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.post("/", createSettingsLink(d));
  return r;
}

function createSettingsLink(d: SettingsLinkRouteDeps) {
  return endpoint("settings_links.create", {}, async (c, { token }) => {
    const body = await jsonBody(c, LinkRequest);
    const origin = apiOrigin(token, body);
    const agentId = body.agent ? (await d.agents.require(body.agent)).id : undefined;
    const url = await d.settingsLinks.create(origin, agentId ? { agentId } : {});
    return c.json({ url, expiresAt: Date.now() + CLAIM_TTL_MS }, 201);
  });
}
