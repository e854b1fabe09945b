import { isLobuError } from "@lobu/core";
import type { TurnContextBuilder } from "./context.ts";
import type { AgentDefinition } from "./registry.ts";

/**
 * The provider and model an agent's turns use when the person has chosen none:
 * its own, else what the gateway falls back to (the preferred provider with a
 * key at agent or installation scope, and that provider's default model).
 * Undefined when no provider has a key.
 */
export interface EffectiveModel {
  provider?: string;
  model?: string;
}

export async function effectiveModel(
  agent: AgentDefinition,
  contexts: TurnContextBuilder,
): Promise<EffectiveModel> {
  try {
    // No user: only keys at agent and installation scope count.
    const provider = await contexts.chooseProvider(agent, "");
    return { provider: provider.id, model: agent.model ?? provider.defaultModel };
  } catch (err) {
    if (isLobuError(err) && err.code === "no_provider") return {};
    throw err;
  }
}

/** Agents as listed by the API: each with the provider and model it would use. */
export async function withEffectiveModels(
  agents: AgentDefinition[],
  contexts: TurnContextBuilder,
): Promise<Array<AgentDefinition & { effective: EffectiveModel }>> {
  return Promise.all(
    agents.map(async (a) => ({ ...a, effective: await effectiveModel(a, contexts) })),
  );
}
