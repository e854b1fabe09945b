import type { LobuConfig, ToolPolicy } from "@lobu/core";
import type { SettingsView } from "@lobu/core/views";
import { mayOpenAdminUi } from "../access/permissions.ts";
import type { SettingsSession } from "../access/web-sessions.ts";
import { effectivePolicy } from "../agents/context.ts";
import type { AgentPackages } from "../agents/packages.ts";
import type { AgentDefinition } from "../agents/registry.ts";
import { approvalEvent, type PendingRequest } from "../domain/requests.ts";
import type { McpService } from "../mcp/service.ts";
import type { UserAgentSettings, UserSettingsStore } from "../people/user-settings.ts";
import type { ModelAccess } from "../providers/model-access.ts";
import type { ProviderRegistry } from "../providers/registry.ts";
import { providerSecretName } from "../providers/registry.ts";
import type { GatewayToolHost } from "../runtime/gateway-tools.ts";
import type { SecretMeta, SecretStore } from "../secrets/store.ts";
import type { SkillCatalog } from "../skills/catalog.ts";

export type { SettingsView };

/** What the page's view of a person's settings is built from. */
export interface SettingsViewDeps {
  config: LobuConfig;
  providers: ProviderRegistry;
  /** Which models the operator allows each agent (the picker's choices). */
  modelAccess: Pick<ModelAccess, "choices" | "allowsProvider" | "allowsModel">;
  secrets: SecretStore;
  skills: SkillCatalog;
  userSettings: UserSettingsStore;
  gatewayTools: Pick<GatewayToolHost, "has" | "basePolicy" | "names">;
  /** Nix packages' state (absent: packages are only listed). */
  packages?: Pick<AgentPackages, "status" | "unavailable" | "refusal">;
  /** MCP connections (absent: each reads as needing authorization). */
  mcp?: Pick<McpService, "status" | "connectUrl" | "disconnect">;
  /** The sandbox tier: stdio MCP servers cannot run in the virtual one. */
  sandboxTier?: { readonly driver: string | undefined };
}

export async function buildView(
  s: SettingsViewDeps,
  session: SettingsSession,
  agent: AgentDefinition,
): Promise<SettingsView> {
  const settings = await s.userSettings.get(agent.id, session.userKey);
  const userSecrets = await s.secrets.list({
    kind: "user",
    agentId: agent.id,
    userKey: session.userKey,
  });
  const providers = await providerRows(s, agent, userSecrets);
  const skills = s.skills.list();
  const installedSkills = s.skills.pick([...agent.skills, ...settings.skills]);
  return {
    user: {
      userKey: session.userKey,
      platform: session.userKey.split(":")[0] ?? "",
      ...(session.userName ? { name: session.userName } : {}),
    },
    agent: { id: agent.id, name: agent.name, description: agent.description },
    isAdmin: mayOpenAdminUi(s.config, session.userKey),
    model: {
      ...(settings.provider ? { provider: settings.provider } : {}),
      ...(settings.model ? { model: settings.model } : {}),
      ...(agent.provider ? { agentProvider: agent.provider } : {}),
      ...(agent.model ? { agentModel: agent.model } : {}),
      choices: modelChoices(s, agent, providers),
      providers,
    },
    skills: {
      catalog: skills.map((k) => ({
        name: k.name,
        description: k.description,
        domains: k.domains,
        packages: k.packages,
        mcp: k.mcp,
        secrets: k.secrets,
      })),
      installed: settings.skills,
      fromAgent: agent.skills,
    },
    mcp: await mcpView(
      s,
      session.userKey,
      settings.mcp,
      installedSkills.flatMap((k) => k.mcp),
    ),
    packages: await packagesView(s, session, agent.id, {
      installed: settings.packages,
      fromSkills: [...new Set(installedSkills.flatMap((k) => k.packages))],
    }),
    domains: {
      user: settings.domains,
      agent: agent.network.allow,
      installation: s.config.network.allow,
      denied: [...new Set([...s.config.network.deny, ...agent.network.deny])],
    },
    tools: toolRows(s, agent, settings),
    secrets: userSecrets
      .filter((m) => !m.name.startsWith("provider."))
      .map((m) => ({ name: m.name, hint: m.hint, updatedAt: m.updatedAt })),
  };
}

/** Every server with the person's connection to it, as honest as the server says. */
async function mcpView(
  s: SettingsViewDeps,
  userKey: string,
  added: string[],
  fromSkills: string[],
): Promise<SettingsView["mcp"]> {
  // Asked of every server at once: one that does not answer holds the page only so long.
  const servers = await Promise.all(
    Object.entries(s.config.mcp).map(async ([id, entry]) => ({
      id,
      description: entry.description,
      status: entry.url
        ? ((await s.mcp?.status(userKey, id)) ?? ("needs_authorization" as const))
        : s.sandboxTier?.driver === "virtual"
          ? ("stdio_unavailable" as const)
          : ("stdio" as const),
    })),
  );
  return { servers, connected: added, fromSkills: [...new Set(fromSkills)] };
}

/** The person's packages with each one's state here, or why packages cannot be used here. */
async function packagesView(
  s: Pick<SettingsViewDeps, "packages">,
  session: SettingsSession,
  agentId: string,
  lists: { installed: string[]; fromSkills: string[] },
): Promise<SettingsView["packages"]> {
  const unavailable = s.packages
    ? s.packages.unavailable()?.reason
    : "Nix packages are not enabled on this gateway";
  if (unavailable || !s.packages)
    return { ...lists, status: {}, ...(unavailable ? { unavailable } : {}) };
  return { ...lists, status: await s.packages.status({ agentId, userKey: session.userKey }) };
}

/** Each provider, with the person's own key (a hint of it) and whether a shared key exists. */
function providerRows(
  s: SettingsViewDeps,
  agent: AgentDefinition,
  userSecrets: SecretMeta[],
): Promise<SettingsView["model"]["providers"]> {
  return Promise.all(
    s.providers.list().map(async (p) => {
      const name = providerSecretName(p.id);
      const own = userSecrets.find((m) => m.name === name);
      const shared =
        (await s.secrets.meta({ scope: { kind: "agent", agentId: agent.id }, name })) ??
        (await s.secrets.meta({ scope: { kind: "installation" }, name }));
      return {
        id: p.id,
        name: p.name,
        type: p.type,
        defaultModel: p.defaultModel,
        allowed: s.modelAccess.allowsProvider(agent.id, p.id, agent.provider),
        userKey: own ? { hint: own.hint, updatedAt: own.updatedAt } : null,
        sharedKey: shared !== null,
      };
    }),
  );
}

/** What the picker offers: allowed models of the providers the person can use (a key is there). */
function modelChoices(
  s: SettingsViewDeps,
  agent: AgentDefinition,
  providers: SettingsView["model"]["providers"],
): SettingsView["model"]["choices"] {
  const usable = providers.filter((p) => p.allowed && (p.userKey || p.sharedKey)).map((p) => p.id);
  const own = agent.provider
    ? {
        provider: agent.provider,
        model: agent.model ?? s.providers.get(agent.provider)?.defaultModel ?? "",
      }
    : undefined;
  return s.modelAccess.choices(agent.id, usable, own).map((m) => ({
    provider: m.provider,
    model: m.id,
    name: m.name,
    contextWindow: m.contextWindow,
    maxOutputTokens: m.maxOutputTokens,
    images: m.images,
    reasoning: m.reasoning,
    price: m.price ? { input: m.price.input, output: m.price.output } : null,
  }));
}

/** The agent's tools that are not simply allowed: what the agent says, and what the person chose. */
function toolRows(
  s: SettingsViewDeps,
  agent: AgentDefinition,
  settings: UserAgentSettings,
): SettingsView["tools"] {
  const policy = effectivePolicy(agent, settings.toolPolicy);
  return [...agent.tools, ...s.gatewayTools.names()]
    .map((name) => ({ name, base: toolBase(s, agent, name) ?? "allow" }))
    .filter((t) => t.base !== "allow")
    .map(({ name, base }) => ({
      name,
      agentPolicy: base,
      ...(settings.toolPolicy[name] ? { userChoice: settings.toolPolicy[name] } : {}),
      effective:
        base === "ask"
          ? (settings.toolPolicy[name] ?? "ask")
          : (policy[name] ?? policy["*"] ?? base),
    }));
}

/**
 * The agent's own policy for one of its tools (built-in or gateway-side), before
 * the person's answers; undefined when the agent has no such tool.
 */
export function toolBase(
  s: Pick<SettingsViewDeps, "gatewayTools">,
  agent: AgentDefinition,
  tool: string,
): ToolPolicy | undefined {
  if (agent.tools.includes(tool))
    return agent.policy.tools[tool] ?? agent.policy.default ?? "allow";
  if (s.gatewayTools.has(tool)) return s.gatewayTools.basePolicy(agent, tool);
  return undefined;
}

/**
 * A pending request as the page shows it (the settings link itself is left out).
 * An approval's display is derived again from its input, here, by the gateway.
 */
export function requestView(r: PendingRequest) {
  const shown =
    r.event.type === "approval_request"
      ? approvalEvent(r.event.requestId, r.event.tool, r.event.input)
      : r.event;
  const { url: _url, ...event } =
    shown.type === "capability_request" ? shown : { ...shown, url: undefined };
  return {
    requestId: r.requestId,
    agentId: r.agentId,
    status: r.status,
    createdAt: r.createdAt,
    event,
    ...(r.answer ? { answer: { choice: r.answer.choice, by: r.answer.by } } : {}),
  };
}
