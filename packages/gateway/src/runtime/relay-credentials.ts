import type { ModelLimits } from "../providers/model-limits.ts";
import { type RelayDeps, relayKey } from "../providers/relay.ts";
import type { SecretSource } from "../proxy/swap.ts";
import type { PlaceholderLookup } from "../secrets/placeholders.ts";
import type { TurnRegistry } from "./active-turns.ts";
import { turnGatedPlaceholders } from "./turn-gate.ts";

/**
 * The relay's `credentialFor`: the real key only for the relay placeholder of
 * the turn running on the sandbox now, charged to that turn's sender and
 * limited to the model the turn was given (plus the agent's `models`), its
 * output limit and parallel calls.
 */
export function turnRelayCredentials(deps: {
  placeholders: PlaceholderLookup;
  secrets: SecretSource;
  turns: TurnRegistry;
  limits: (agentId: string) => ModelLimits;
  /** The agent's allowed models through one provider (ModelAccess.relayModels); default: `limits.models`. */
  relayModels?: (agentId: string, providerId: string) => string[];
}): RelayDeps["credentialFor"] {
  const gated = {
    placeholders: turnGatedPlaceholders(deps.placeholders, deps.turns),
    secrets: deps.secrets,
  };
  return async (sandboxId, providerId, placeholder) => {
    const value = await relayKey(gated, sandboxId, providerId, placeholder);
    const running = deps.turns.current(sandboxId);
    if (value === null || !running) return null;
    const limits = deps.limits(running.agentId);
    return {
      value,
      agentId: running.agentId,
      // Charged to the sender of the running turn, not to whoever spoke last.
      userKey: running.userKey,
      grant: {
        models: [
          ...new Set([
            running.model.id,
            ...(deps.relayModels?.(running.agentId, providerId) ?? limits.models),
          ]),
        ],
        maxOutputTokens: limits.maxOutputTokens,
        maxParallelCalls: limits.maxParallelCalls,
      },
    };
  };
}
