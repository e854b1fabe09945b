import type { LobuConfig } from "@lobu/core";
import { type ProviderRegistry, providerSecretName } from "../providers/registry.ts";
import type { FailoverTarget, RelayDeps } from "../providers/relay.ts";
import type { SecretStore } from "../secrets/store.ts";

/**
 * The relay's fallbacks for a model call (`[agents.<id>] fallback`): each
 * `"<provider>/<model>"` in order, with the key the call's sender would get
 * for that provider (their own, the agent's or the installation's). A
 * fallback of another wire format is skipped: the relay forwards the worker's
 * request unchanged but for its model, so it can only go where the same API
 * is spoken (docs/providers.md, Failover). One without a key is skipped too.
 */
export function agentFailoverTargets(deps: {
  config: LobuConfig;
  providers: ProviderRegistry;
  secrets: Pick<SecretStore, "resolve">;
}): NonNullable<RelayDeps["failoverTargets"]> {
  return async (call, type) => {
    const out: FailoverTarget[] = [];
    for (const entry of deps.config.agents[call.agentId]?.fallback ?? []) {
      const slash = entry.indexOf("/");
      const provider = deps.providers.get(entry.slice(0, slash));
      const model = entry.slice(slash + 1);
      if (!provider || provider.type !== type) continue;
      if (provider.id === call.provider && model === call.model) continue;
      const found = await deps.secrets.resolve(providerSecretName(provider.id), {
        agentId: call.agentId,
        ...(call.userKey ? { userKey: call.userKey } : {}),
      });
      if (found) out.push({ provider, model, key: found.value });
    }
    return out;
  };
}
