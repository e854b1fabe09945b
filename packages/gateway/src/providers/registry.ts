import { type LobuConfig, LobuError, type ModelInfoSection } from "@lobu/core";
import { PRESETS, presetOf } from "./presets.ts";

export type ProviderType = "anthropic" | "openai";

export interface ProviderInfo {
  id: string;
  /** Shown to people (the preset's name, else the id). */
  name: string;
  type: ProviderType;
  /** Upstream base URL (the SDK-style base: Anthropic without /v1, OpenAI with /v1). */
  baseUrl: string;
  /** Environment variable that holds the installation key, if any. */
  keyEnv?: string;
  defaultModel: string;
  /** pi's catalogue provider that describes this provider's models (catalog.ts). */
  catalog?: string;
  /** A local server: works without a key (presets.ts). */
  keyOptional: boolean;
  /** `[providers.<id>] models`: what people may pick of this provider. */
  models: string[];
  /** `[providers.<id>.model_info]`: what the catalogue does not know or gets wrong. */
  modelInfo: Record<string, ModelInfoSection>;
  /** pi's request settings for the service behind the relay (presets.ts). */
  compat?: Record<string, unknown>;
  /** Where the definition came from. */
  source: "builtin" | "config";
}

export const API_OF: Record<ProviderType, "anthropic-messages" | "openai-completions"> = {
  anthropic: "anthropic-messages",
  openai: "openai-completions",
};

/** Name of the secret that holds a provider's key (at installation, agent or user scope). */
export function providerSecretName(providerId: string): string {
  return `provider.${providerId}`;
}

/**
 * The key value stored for a local server configured without one: the relay
 * sends no credential for it (relay.ts), and people see "provided by the team".
 */
export const KEYLESS = "lobu-keyless-provider";

/**
 * Providers the gateway can relay to: the built-in ones (presets.ts; base URLs
 * overridable with `<NAME>_BASE_URL`) plus [providers.*] from lobu.toml. Keys
 * are not held here; see the secret store.
 */
export class ProviderRegistry {
  private readonly providers = new Map<string, ProviderInfo>();

  constructor(config: LobuConfig, env: NodeJS.ProcessEnv = process.env) {
    for (const b of PRESETS) {
      // Local servers only where someone set them up (presets.ts).
      if (b.local && !env[b.baseEnv] && !config.providers[b.id]) continue;
      this.providers.set(b.id, {
        id: b.id,
        name: b.name,
        type: b.type,
        baseUrl: (env[b.baseEnv] || b.baseUrl).replace(/\/+$/, ""),
        keyEnv: b.keyEnv,
        defaultModel: (b.modelEnv && env[b.modelEnv]) || b.defaultModel,
        ...(b.catalog ? { catalog: b.catalog } : {}),
        ...(b.compat ? { compat: b.compat } : {}),
        keyOptional: b.local === true,
        models: [],
        modelInfo: {},
        source: "builtin",
      });
    }
    for (const [id, p] of Object.entries(config.providers)) {
      const preset = presetOf(id);
      const type = p.type ?? preset?.type;
      if (!type) {
        throw new LobuError("config_invalid", `[providers.${id}] needs a type`, {
          hint: `Set type = "openai" (OpenAI-compatible) or type = "anthropic"; built-in ids that need none: ${PRESETS.map((b) => b.id).join(", ")}.`,
        });
      }
      // A built-in id keeps its preset (catalogue, key variable) when the wire format is its own.
      const same = preset && preset.type === type ? preset : undefined;
      const known = this.providers.get(id);
      const fallback = PRESETS.find((b) => b.id === type)!;
      this.providers.set(id, {
        id,
        name: same?.name ?? id,
        type,
        baseUrl: (p.base_url ?? known?.baseUrl ?? same?.baseUrl ?? fallback.baseUrl).replace(
          /\/+$/,
          "",
        ),
        keyEnv: p.api_key_env ?? same?.keyEnv,
        defaultModel: p.default_model ?? known?.defaultModel ?? fallback.defaultModel,
        ...(same?.catalog ? { catalog: same.catalog } : {}),
        ...(same?.compat ? { compat: same.compat } : {}),
        keyOptional: same?.local === true,
        models: [...p.models],
        modelInfo: { ...p.model_info },
        source: "config",
      });
    }
  }
  list(): ProviderInfo[] {
    return [...this.providers.values()];
  }

  get(id: string): ProviderInfo | undefined {
    return this.providers.get(id);
  }

  require(id: string): ProviderInfo {
    const p = this.providers.get(id);
    if (!p) {
      throw new LobuError("provider_unknown", `unknown provider "${id}"`, {
        status: 400,
        hint: `Known providers: ${[...this.providers.keys()].join(", ")}. Add others under [providers.<id>] in lobu.toml.`,
      });
    }
    return p;
  }
}
