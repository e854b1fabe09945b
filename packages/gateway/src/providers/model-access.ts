import type { LobuConfig } from "@lobu/core";
import type { ModelCatalog, ModelInfo } from "./catalog.ts";
import type { ProviderRegistry } from "./registry.ts";

/** A model of a provider: `openai` + `gpt-4.1-mini`. */
export interface ModelRef {
  provider: string;
  model: string;
}

/** One entry of an allow list, split: `provider` undefined for a bare model id (any provider). */
interface Pattern {
  provider?: string;
  model: string;
}

/** `pattern` names `model`: equal, or a prefix ending in `*` (`"*"` alone: every model). */
export function modelMatches(pattern: string, model: string): boolean {
  if (pattern === "*") return true;
  return pattern.endsWith("*") ? model.startsWith(pattern.slice(0, -1)) : pattern === model;
}

/**
 * Which models an agent may use: what people may pick on the settings page,
 * and what the LLM relay forwards. The operator lists them in lobu.toml
 * (`[agents.<id>] models` and `[providers.<id>] models`); with no list
 * anywhere, every catalogue model of every provider (and any model of a
 * provider the catalogue does not describe) is allowed. The agent's own
 * provider and model, set by the operator, are always allowed.
 */
export class ModelAccess {
  readonly #config: LobuConfig;
  readonly #providers: ProviderRegistry;
  readonly #catalog: ModelCatalog;

  constructor(config: LobuConfig, providers: ProviderRegistry, catalog: ModelCatalog) {
    this.#config = config;
    this.#providers = providers;
    this.#catalog = catalog;
  }

  /**
   * `"openai/gpt-4.1*"` names a provider when its first part is a provider id;
   * otherwise (`"gpt-4.1-mini"`, and OpenRouter-style `"meta-llama/x"`) it is a bare model id.
   */
  #parse(entry: string): Pattern {
    const slash = entry.indexOf("/");
    if (slash > 0 && this.#providers.get(entry.slice(0, slash)))
      return { provider: entry.slice(0, slash), model: entry.slice(slash + 1) };
    return { model: entry };
  }

  #patterns(agentId: string): Pattern[] {
    const own = (this.#config.agents[agentId]?.models ?? []).map((e) => this.#parse(e));
    const byProvider = this.#providers
      .list()
      .flatMap((p) => p.models.map((model) => ({ provider: p.id, model })));
    return [...own, ...byProvider];
  }

  /** No allow list applies to the agent: the catalogue is the limit. */
  open(agentId: string): boolean {
    return this.#patterns(agentId).length === 0;
  }

  /** A person may choose this provider for the agent (some model of it is allowed). */
  allowsProvider(agentId: string, providerId: string, agentProvider?: string): boolean {
    if (!this.#providers.get(providerId)) return false;
    if (providerId === agentProvider || this.open(agentId)) return true;
    return this.#patterns(agentId).some(
      (p) => p.provider === undefined || p.provider === providerId,
    );
  }

  /** A person may choose (or a turn may run) this model; `agentOwn`: the operator's own choice for the agent. */
  allowsModel(agentId: string, ref: ModelRef, agentOwn?: ModelRef): boolean {
    const provider = this.#providers.get(ref.provider);
    if (!provider) return false;
    if (agentOwn && agentOwn.provider === ref.provider && agentOwn.model === ref.model) return true;
    if (this.open(agentId)) {
      // A provider the catalogue does not describe serves what it serves.
      return (
        !provider.catalog ||
        this.#catalog.has(provider, ref.model) ||
        ref.model === provider.defaultModel
      );
    }
    return this.#patterns(agentId).some(
      (p) =>
        (p.provider === undefined || p.provider === ref.provider) &&
        modelMatches(p.model, ref.model),
    );
  }

  /**
   * The relay's grant for `providerId`: model ids (a trailing `*` for a
   * prefix) a call through that provider may name besides the turn's own.
   */
  relayModels(agentId: string, providerId: string): string[] {
    return this.#patterns(agentId)
      .filter((p) => p.provider === undefined || p.provider === providerId)
      .map((p) => p.model);
  }

  /**
   * What the settings page offers for `providerIds` (those with a key): the
   * catalogue models allowed, plus the allow list's exact ids the catalogue
   * does not know, plus the agent's own model. At most `limit` per provider.
   */
  choices(agentId: string, providerIds: string[], agentOwn?: ModelRef, limit = 400): ModelInfo[] {
    const out: ModelInfo[] = [];
    const patterns = this.#patterns(agentId);
    for (const id of providerIds) {
      const provider = this.#providers.get(id);
      if (!provider) continue;
      const ids = new Set<string>();
      if (agentOwn?.provider === id) ids.add(agentOwn.model);
      for (const m of this.#catalog.list(provider))
        if (this.allowsModel(agentId, { provider: id, model: m.id }, agentOwn)) ids.add(m.id);
      for (const p of patterns) {
        if (p.model.endsWith("*")) continue;
        // A bare id names a model of whichever provider has it.
        const here =
          p.provider === id ||
          (p.provider === undefined && (!provider.catalog || this.#catalog.has(provider, p.model)));
        if (here) ids.add(p.model);
      }
      if (this.allowsModel(agentId, { provider: id, model: provider.defaultModel }, agentOwn))
        ids.add(provider.defaultModel);
      for (const model of [...ids].slice(0, limit)) out.push(this.#catalog.info(provider, model));
    }
    return out;
  }
}
