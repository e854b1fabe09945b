import { getBuiltinModels } from "@earendil-works/pi-ai/providers/all";
import type { PriceSection } from "@lobu/core";
import type { ProviderInfo } from "./registry.ts";

/** What the gateway needs to know about one model. */
export interface ModelInfo {
  provider: string;
  id: string;
  name: string;
  contextWindow: number;
  maxOutputTokens: number;
  images: boolean;
  reasoning: boolean;
  /** USD per million tokens, from the catalogue (null: unknown, not free). */
  price: PriceSection | null;
  /** Described by pi's catalogue (else the fallback, with lobu.toml's `model_info`). */
  known: boolean;
  /**
   * pi's request settings for the model through an OpenAI-compatible provider:
   * the provider's (presets.ts) with the catalogue's own for the model on top.
   */
  compat?: Record<string, unknown>;
}

/**
 * What a model unknown to the catalogue (a local or custom one) is taken to
 * have: modest, so a turn's history is trimmed early rather than overflowing;
 * `[providers.<id>.model_info."<model>"]` says otherwise.
 */
export const UNKNOWN_MODEL = Object.freeze({
  contextWindow: 128_000,
  maxOutputTokens: 8_192,
  images: false,
  reasoning: false,
});

type CatalogueModel = ReturnType<typeof getBuiltinModels>[number];

/**
 * The model catalogue: pi's model registry (context window, output limit,
 * image input, reasoning, prices per million tokens), which pi's maintainers
 * regenerate from the providers' own listings on every release, with the
 * operator's `model_info` on top. Read once per catalogue provider.
 */
export class ModelCatalog {
  readonly #byCatalog = new Map<string, Map<string, CatalogueModel>>();

  #models(catalog: string): Map<string, CatalogueModel> {
    let models = this.#byCatalog.get(catalog);
    if (!models) {
      models = new Map();
      // An id pi does not know yields no models (the type names only its own).
      for (const m of getBuiltinModels(catalog as Parameters<typeof getBuiltinModels>[0]))
        models.set(m.id, m);
      this.#byCatalog.set(catalog, models);
    }
    return models;
  }

  /** The provider's catalogue models (none for a local or custom provider). */
  list(provider: ProviderInfo): ModelInfo[] {
    if (!provider.catalog) return [];
    return [...this.#models(provider.catalog).keys()].map((id) => this.info(provider, id));
  }

  /** Whether the catalogue describes `model` of `provider`. */
  has(provider: ProviderInfo, model: string): boolean {
    return provider.catalog !== undefined && this.#models(provider.catalog).has(model);
  }

  /** What `model` of `provider` can do and costs; the fallback when unknown. */
  info(provider: ProviderInfo, model: string): ModelInfo {
    const m = provider.catalog ? this.#models(provider.catalog).get(model) : undefined;
    const own = provider.modelInfo[model];
    return {
      provider: provider.id,
      id: model,
      name: m?.name ?? model,
      contextWindow: own?.context_window ?? m?.contextWindow ?? UNKNOWN_MODEL.contextWindow,
      maxOutputTokens: own?.max_output_tokens ?? m?.maxTokens ?? UNKNOWN_MODEL.maxOutputTokens,
      images: own?.images ?? (m ? m.input.includes("image") : UNKNOWN_MODEL.images),
      reasoning: own?.reasoning ?? m?.reasoning ?? UNKNOWN_MODEL.reasoning,
      price: m
        ? {
            input: m.cost.input,
            output: m.cost.output,
            cache_read: m.cost.cacheRead,
            cache_write: m.cost.cacheWrite,
          }
        : null,
      known: m !== undefined,
      ...compatOf(provider, m),
    };
  }
}

/**
 * Only for the Chat Completions wire, and only a catalogue entry of that API:
 * a model pi lists under another API (OpenAI's Responses) has settings that do
 * not apply to the calls the relay forwards.
 */
function compatOf(
  provider: ProviderInfo,
  m: CatalogueModel | undefined,
): { compat?: Record<string, unknown> } {
  if (provider.type !== "openai") return {};
  const own =
    m?.api === "openai-completions" ? (m.compat as unknown as Record<string, unknown>) : undefined;
  const compat = { ...provider.compat, ...own };
  return Object.keys(compat).length ? { compat } : {};
}
