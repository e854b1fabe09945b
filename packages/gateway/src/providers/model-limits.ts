import { AgentSection, type LobuConfig } from "@lobu/core";

/**
 * What one agent's model calls through the LLM relay may ask for (lobu.toml
 * `[agents.<id>]` `models`, `max_output_tokens`, `max_parallel_model_calls`).
 * Agents created through the API, and the implicit default agent, get the
 * schema's defaults: the operator sets limits in lobu.toml.
 */
export interface ModelLimits {
  /** Models allowed besides the turn's own. */
  models: string[];
  maxOutputTokens: number;
  maxParallelCalls: number;
}

const DEFAULTS = AgentSection.parse({});

export const DEFAULT_MODEL_LIMITS: ModelLimits = Object.freeze({
  models: [],
  maxOutputTokens: DEFAULTS.max_output_tokens,
  maxParallelCalls: DEFAULTS.max_parallel_model_calls,
});

export function modelLimitsFor(config: LobuConfig, agentId: string): ModelLimits {
  const section = config.agents[agentId];
  if (!section) return DEFAULT_MODEL_LIMITS;
  return {
    models: [...section.models],
    maxOutputTokens: section.max_output_tokens,
    maxParallelCalls: section.max_parallel_model_calls,
  };
}
