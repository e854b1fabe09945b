import { type LobuConfig, LobuError } from "@lobu/core";

export type ProviderType = "anthropic" | "openai";

export interface ProviderInfo {
  id: string;
  type: ProviderType;
  /** Upstream base URL (the SDK-style base: Anthropic without /v1, OpenAI with /v1). */
  baseUrl: string;
  /** Environment variable that holds the installation key, if any. */
  keyEnv?: string;
  defaultModel: string;
  /** Where the definition came from. */
  source: "builtin" | "config";
}

const BUILTIN: Record<
  ProviderType,
  { baseUrl: string; keyEnv: string; baseEnv: string; defaultModel: string }
> = {
  anthropic: {
    baseUrl: "https://api.anthropic.com",
    keyEnv: "ANTHROPIC_API_KEY",
    baseEnv: "ANTHROPIC_BASE_URL",
    defaultModel: "claude-sonnet-4-5",
  },
  openai: {
    baseUrl: "https://api.openai.com/v1",
    keyEnv: "OPENAI_API_KEY",
    baseEnv: "OPENAI_BASE_URL",
    defaultModel: "gpt-4.1-mini",
  },
};

export const API_OF: Record<ProviderType, "anthropic-messages" | "openai-completions"> = {
  anthropic: "anthropic-messages",
  openai: "openai-completions",
};

/** Name of the secret that holds a provider's key (at installation, agent or user scope). */
export function providerSecretName(providerId: string): string {
  return `provider.${providerId}`;
}

/**
 * Providers the gateway can relay to: the built-in Anthropic and OpenAI(-compatible)
 * ones (base URLs overridable with ANTHROPIC_BASE_URL / OPENAI_BASE_URL) plus
 * [providers.*] from lobu.toml. Keys are not held here; see the secret store.
 */
export class ProviderRegistry {
  private readonly providers = new Map<string, ProviderInfo>();

  constructor(config: LobuConfig, env: NodeJS.ProcessEnv = process.env) {
    for (const [type, b] of Object.entries(BUILTIN) as [
      ProviderType,
      (typeof BUILTIN)[ProviderType],
    ][]) {
      this.providers.set(type, {
        id: type,
        type,
        baseUrl: (env[b.baseEnv] || b.baseUrl).replace(/\/+$/, ""),
        keyEnv: b.keyEnv,
        defaultModel: b.defaultModel,
        source: "builtin",
      });
    }
    for (const [id, p] of Object.entries(config.providers)) {
      const builtin = BUILTIN[p.type];
      this.providers.set(id, {
        id,
        type: p.type,
        baseUrl: (p.base_url ?? this.providers.get(id)?.baseUrl ?? builtin.baseUrl).replace(
          /\/+$/,
          "",
        ),
        keyEnv: p.api_key_env ?? (id === p.type ? builtin.keyEnv : undefined),
        defaultModel: p.default_model ?? builtin.defaultModel,
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
