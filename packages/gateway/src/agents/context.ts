import { LobuError, type ToolPolicy, type TurnContext, UNTRUSTED_CONTENT_RULE } from "@lobu/core";
import { userKeyOf } from "../domain/origin.ts";
import type { QueuedTurn } from "../domain/turns.ts";
import type { UserSettingsStore } from "../people/user-settings.ts";
import type { ModelCatalog } from "../providers/catalog.ts";
import type { ModelAccess } from "../providers/model-access.ts";
import { DEFAULT_MODEL_LIMITS, type ModelLimits } from "../providers/model-limits.ts";
import {
  API_OF,
  type ProviderInfo,
  type ProviderRegistry,
  providerSecretName,
} from "../providers/registry.ts";
import type { TurnBinding } from "../secrets/placeholders.ts";
import type { ResolvedSecret, SecretRef, SecretStore } from "../secrets/store.ts";
import type { SkillCatalog } from "../skills/catalog.ts";
import type { SkillViews } from "../skills/views.ts";
import { FILES_PROMPT } from "./files-prompt.ts";
import { type AgentPackages, wantedPackages } from "./packages.ts";
import { DEFAULT_SYSTEM_PROMPT } from "./prompt.ts";
import type { AgentDefinition, AgentRegistry } from "./registry.ts";

/** Issues placeholders bound to a sandbox, a secret and the hosts it may be used on. */
export interface PlaceholderIssuer {
  issue(binding: {
    sandboxId: string;
    secret: SecretRef;
    hosts: string[];
    locations?: ("header" | "url" | "body")[];
    /** `relay`: only the gateway's LLM relay may use it; the egress proxy never swaps it. */
    purpose?: "proxy" | "relay";
    /** Valid during this turn only (revoked when it ends). */
    turn?: TurnBinding;
  }): Promise<string>;
}

export const RELAY_ENDPOINT = (providerId: string) => `/__lobu/llm/${providerId}`;

const PREFERRED = ["anthropic", "openai"];

/** Merge agent policy with a user's answers: users may settle "ask", never loosen "deny". */
export function effectivePolicy(
  agent: AgentDefinition,
  user: Record<string, ToolPolicy>,
): Record<string, ToolPolicy> {
  const policy: Record<string, ToolPolicy> = { "*": agent.policy.default, ...agent.policy.tools };
  if (agent.allowedTools) onlyThese(policy, agent.allowedTools);
  for (const [tool, choice] of Object.entries(user)) {
    const base = policy[tool] ?? policy["*"] ?? "allow";
    if (base === "ask") policy[tool] = choice;
  }
  return policy;
}

/**
 * A channel's tool set (agents/channels.ts): the tools it names keep their
 * policy, every other one — a gateway tool added later too — is denied. Deny
 * is final, so neither a person's answers nor the worker can bring one back.
 */
function onlyThese(policy: Record<string, ToolPolicy>, allowed: readonly string[]): void {
  const fallback = policy["*"] ?? "allow";
  for (const name of Object.keys(policy)) {
    if (name !== "*" && !allowed.includes(name)) policy[name] = "deny";
  }
  for (const name of allowed) policy[name] ??= fallback;
  policy["*"] = "deny";
}

/**
 * Builds what a worker needs for one turn from the agent definition, the user's
 * own settings and the credentials available to them. Real keys never enter the
 * context: only placeholders bound to this sandbox — and, for what is the
 * sender's own (their secrets, their provider key) and for every provider key,
 * to this turn (see runtime/turn-gate.ts). In a channel's shared sandbox a turn
 * thus sees the agent's and installation's credentials plus its sender's own.
 */
export class TurnContextBuilder {
  private readonly deps: {
    agents: AgentRegistry;
    providers: ProviderRegistry;
    secrets: SecretStore;
    placeholders: PlaceholderIssuer;
    userSettings: UserSettingsStore;
    skills: SkillCatalog;
    /** Puts the files of the turn's skills where its sandbox shows them (skills/views.ts). */
    skillViews?: Pick<SkillViews, "sync">;
    /** Usage budgets: refuses the turn before anything is started when one is used up. */
    budgets?: { checkTurn(caller: { agentId: string; userKey: string }): Promise<void> };
    /** The agent's relay limits (lobu.toml); the worker is told the same output limit. */
    modelLimits?: (agentId: string) => ModelLimits;
    /** Nix packages: the sandbox shows the sender's profile; the agent is told what it has. */
    packages?: Pick<AgentPackages, "forTurn">;
    /** Pictures reach the model as images (`[files] images_to_model`), if the model takes them. */
    modelImages?: boolean;
    /** What each model can do (context window, output limit, images): pi's catalogue. */
    catalog?: Pick<ModelCatalog, "info">;
    /** Which models the operator allows: a person's choice outside them is not used. */
    access?: Pick<ModelAccess, "allowsModel" | "allowsProvider">;
  };

  constructor(deps: TurnContextBuilder["deps"]) {
    this.deps = deps;
  }

  /** The provider an agent uses for this user: explicit choice, else the only (or preferred) one with a key. */
  async chooseProvider(
    agent: AgentDefinition,
    userKey: string,
    userChoice?: string,
  ): Promise<ProviderInfo> {
    return (await this.#providerAndKey(agent, userKey, userChoice)).provider;
  }

  /** chooseProvider, with the key it found for this user (none: an explicit choice without one). */
  async #providerAndKey(
    agent: AgentDefinition,
    userKey: string,
    userChoice?: string,
  ): Promise<{ provider: ProviderInfo; key: ResolvedSecret | null }> {
    const lookup = (p: ProviderInfo) =>
      this.deps.secrets.resolve(providerSecretName(p.id), { agentId: agent.id, userKey });
    const explicit = userChoice ?? agent.provider;
    if (explicit) {
      const provider = this.deps.providers.require(explicit);
      return { provider, key: await lookup(provider) };
    }
    // Every provider's key is looked up at once (each is a store read).
    const providers = this.deps.providers.list();
    const keys = await Promise.all(providers.map(lookup));
    const withKey = providers
      .map((provider, i) => ({ provider, key: keys[i] ?? null }))
      .filter((c) => c.key);
    if (withKey.length === 0) {
      throw new LobuError("no_provider", "no model provider is configured for this agent", {
        status: 503,
        hint: "Set ANTHROPIC_API_KEY or OPENAI_API_KEY on the gateway, add your own key in the agent's settings page, or PUT /api/v1/agents/<id>/secrets/provider.anthropic.",
      });
    }
    return withKey.sort((a, b) => rank(a.provider.id) - rank(b.provider.id))[0]!;
  }

  /**
   * The turn's model: the person's choice while the operator allows it, else
   * the agent's (its `model` on its own provider), else the provider's default.
   */
  modelFor(agent: AgentDefinition, provider: ProviderInfo, chosen: string | undefined): string {
    const own =
      agent.model && (!agent.provider || agent.provider === provider.id) ? agent.model : undefined;
    const fallback = own ?? provider.defaultModel;
    if (!chosen || chosen === fallback) return fallback;
    const agentOwn = { provider: agent.provider ?? provider.id, model: fallback };
    const access = this.deps.access;
    return !access ||
      access.allowsModel(agent.id, { provider: provider.id, model: chosen }, agentOwn)
      ? chosen
      : fallback;
  }

  /**
   * `turnId`: the attempt being run (`<messageId>.<attempt>`), which turn-bound
   * placeholders belong to. `admitted` is called once the turn may run (agent,
   * budget and key found), before the rest is written: the turn's sandbox can wake
   * meanwhile.
   */
  async build(
    turn: QueuedTurn,
    turnId: string,
    opts: { admitted?: () => void } = {},
  ): Promise<TurnContext> {
    const { agents, secrets, placeholders, userSettings, skills } = this.deps;
    const agentId = turn.key.agentId;
    // The sender of this message, not the conversation's owner: in a shared
    // channel sandbox, Bob's turn resolves Bob's secrets and settings.
    const userKey = userKeyOf(turn.origin);
    const thisTurn: TurnBinding = { turnId, userKey };
    // Independent reads run together; an unknown agent or a refusal (budget) fails the turn.
    const [agent, , settings] = await Promise.all([
      agents.forTurn(agentId, turn.origin),
      this.deps.budgets?.checkTurn({ agentId, userKey }),
      userSettings.get(agentId, userKey),
    ]);
    // A choice the operator no longer allows (lobu.toml changed since) is not used.
    const chosenProvider =
      settings.provider &&
      (this.deps.access?.allowsProvider(agent.id, settings.provider, agent.provider) ?? true)
        ? settings.provider
        : undefined;
    const { provider, key: secret } = await this.#providerAndKey(agent, userKey, chosenProvider);
    if (!secret) {
      throw new LobuError("no_provider_key", `no API key for provider "${provider.id}"`, {
        status: 503,
        hint: `Set ${provider.keyEnv ?? "the provider key"} on the gateway, or add your own key in the agent's settings page.`,
      });
    }
    opts.admitted?.();
    const installed = skills.pick([...agent.skills, ...settings.skills]);
    // Credentials for the shell: placeholders only, bound to this sandbox and their hosts.
    const shellCredential = async ([name, binding]: [
      string,
      AgentDefinition["secrets"][string],
    ]) => {
      const found = await secrets.resolve(binding.secret, { agentId: agent.id, userKey });
      if (!found) return undefined;
      const placeholder = await placeholders.issue({
        sandboxId: turn.conversationId,
        secret: found.ref,
        hosts: binding.hosts,
        locations: binding.locations,
        // The sender's own secret acts in their own turn only; the agent's and the
        // installation's stay bound to the sandbox (and act only while a turn runs).
        ...(found.ref.scope.kind === "user" ? { turn: thisTurn } : {}),
      });
      return [name, placeholder] as const;
    };
    // The steps below do not depend on each other: their store reads and writes go together.
    const [apiKey, packagesNote, credentials] = await Promise.all([
      placeholders.issue({
        sandboxId: turn.conversationId,
        secret: secret.ref,
        hosts: [new URL(provider.baseUrl).hostname],
        // Provider keys only ever travel in a header; never swap them into bodies.
        locations: ["header"],
        // Only the LLM relay swaps it (metered); the proxy never sends it anywhere.
        purpose: "relay",
        // A model call is worth something only inside the turn it was issued for.
        turn: thisTurn,
      }),
      this.deps.packages?.forTurn(
        turn.conversationId,
        { agentId: agent.id, userKey },
        wantedPackages(agent, settings, skills),
      ),
      Promise.all(Object.entries(agent.secrets).map(shellCredential)),
      // The sender's skills' files, in place before the sandbox runs the turn.
      this.deps.skillViews?.sync(turn.conversationId, installed),
    ]);
    const env: Record<string, string> = Object.fromEntries(
      credentials.filter((c) => c !== undefined),
    );
    const modelId = this.modelFor(agent, provider, settings.model);
    const info = this.deps.catalog?.info(provider, modelId);
    // What the relay allows one call to ask for (max_output_tokens), and no more than the model can.
    const allowed = (this.deps.modelLimits?.(agent.id) ?? DEFAULT_MODEL_LIMITS).maxOutputTokens;
    return {
      agentId: agent.id,
      model: {
        provider: provider.id,
        api: API_OF[provider.type],
        id: modelId,
        endpoint: RELAY_ENDPOINT(provider.id),
        apiKey,
        contextWindow: info?.contextWindow ?? 200_000,
        maxTokens: Math.min(allowed, info?.maxOutputTokens ?? allowed),
        images: (this.deps.modelImages ?? false) && (info?.images ?? true),
        ...(info?.compat ? { compat: info.compat } : {}),
      },
      // Every agent gets the rule on untrusted content, whatever its own prompt says.
      systemPrompt: [
        agent.systemPrompt ?? DEFAULT_SYSTEM_PROMPT,
        UNTRUSTED_CONTENT_RULE,
        FILES_PROMPT,
        packagesNote,
      ]
        .filter(Boolean)
        .join("\n\n"),
      tools: agent.tools,
      toolPolicy: effectivePolicy(agent, settings.toolPolicy),
      skills: installed.map((s) => ({
        name: s.name,
        description: s.description,
        instructions: s.instructions,
        files: s.files && this.deps.skillViews !== undefined,
        secrets: s.secrets,
      })),
      env,
      requestTimeoutSec: Math.max(1, Math.round(agent.policy.requestTimeoutMs / 1000)),
    };
  }
}

function rank(id: string): number {
  const i = PREFERRED.indexOf(id);
  return i === -1 ? PREFERRED.length : i;
}
