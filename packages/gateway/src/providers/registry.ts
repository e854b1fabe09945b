import { type LobuConfig, LobuError, type ModelSpec } from "@lobu/core";
import { WIRES, type WireType } from "./wire/index.ts";

export type ProviderType = WireType;

export interface ProviderInfo {
  id: string;
  type: ProviderType;
  /** Upstream base URL (the SDK-style base: Anthropic without /v1, OpenAI with /v1). */
  baseUrl: string;
  /** Environment variable that holds the installation key, if any. */
  keyEnv?: string;
  defaultModel: string;
  /** AWS region (Bedrock) or Google Cloud location (Vertex AI). */
  region?: string;
  /** Google Cloud project (Vertex AI). */
  project?: string;
  /** Where the definition came from. */
  source: "builtin" | "config";
}

/** Providers that exist without lobu.toml: each needs only its key in the environment. */
const BUILTIN: Partial<
  Record<ProviderType, { baseUrl: string; keyEnv: string; baseEnv: string; defaultModel: string }>
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
  gemini: {
    baseUrl: "https://generativelanguage.googleapis.com",
    keyEnv: "GEMINI_API_KEY",
    baseEnv: "GEMINI_BASE_URL",
    defaultModel: "gemini-2.5-flash",
  },
};

/** Defaults of the providers configured only in lobu.toml (`[providers.<id>] type = …`). */
const DEFAULTS: Record<ProviderType, { baseUrl?: string; defaultModel: string }> = {
  anthropic: { baseUrl: "https://api.anthropic.com", defaultModel: "claude-sonnet-4-5" },
  openai: { baseUrl: "https://api.openai.com/v1", defaultModel: "gpt-4.1-mini" },
  "openai-responses": { baseUrl: "https://api.openai.com/v1", defaultModel: "gpt-5-mini" },
  gemini: {
    baseUrl: "https://generativelanguage.googleapis.com",
    defaultModel: "gemini-2.5-flash",
  },
  // Region-specific: derived from `region` below.
  vertex: { defaultModel: "gemini-2.5-flash" },
  bedrock: { defaultModel: "anthropic.claude-sonnet-4-5-20250929-v1:0" },
  // Per resource: base_url is required.
  azure: { defaultModel: "gpt-4.1-mini" },
};

/** The base URL of a provider that has none configured, or a clear error. */
function defaultBaseUrl(id: string, type: ProviderType, region: string | undefined): string {
  const fixed = DEFAULTS[type].baseUrl;
  if (fixed) return fixed;
  if (type === "vertex") {
    return !region || region === "global"
      ? "https://aiplatform.googleapis.com"
      : `https://${region}-aiplatform.googleapis.com`;
  }
  if (type === "bedrock") return `https://bedrock-runtime.${region ?? "us-east-1"}.amazonaws.com`;
  throw new LobuError("config_invalid", `[providers.${id}] needs base_url`, {
    hint: 'For Azure OpenAI: base_url = "https://<resource>.openai.azure.com" (see docs/providers.md).',
  });
}

export const API_OF = Object.fromEntries(
  Object.entries(WIRES).map(([type, wire]) => [type, wire.api]),
) as Record<ProviderType, ModelSpec["api"]>;

/** Name of the secret that holds a provider's key (at installation, agent or user scope). */
export function providerSecretName(providerId: string): string {
  return `provider.${providerId}`;
}

/**
 * Providers the gateway can relay to: the built-in Anthropic, OpenAI(-compatible)
 * and Gemini ones (base URLs overridable with ANTHROPIC_BASE_URL / OPENAI_BASE_URL /
 * GEMINI_BASE_URL) plus [providers.*] from lobu.toml (Vertex AI, Bedrock, Azure
 * OpenAI, the Responses API and more of the same types; docs/providers.md). Keys are not held here; see the secret store.
 */
export class ProviderRegistry {
  private readonly providers = new Map<string, ProviderInfo>();

  constructor(config: LobuConfig, env: NodeJS.ProcessEnv = process.env) {
    for (const [type, b] of Object.entries(BUILTIN) as [
      ProviderType,
      NonNullable<(typeof BUILTIN)[ProviderType]>,
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
        baseUrl: (
          p.base_url ??
          (this.providers.get(id)?.type === p.type ? this.providers.get(id)?.baseUrl : undefined) ??
          defaultBaseUrl(id, p.type, p.region)
        ).replace(/\/+$/, ""),
        keyEnv: p.api_key_env ?? (id === p.type ? builtin?.keyEnv : undefined),
        defaultModel: p.default_model ?? DEFAULTS[p.type].defaultModel,
        ...(p.region ? { region: p.region } : {}),
        ...(p.project ? { project: p.project } : {}),
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
