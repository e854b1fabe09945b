import { type LobuConfig, LobuError, type ModelInfoSection, type ModelSpec } from "@lobu/core";
import { PRESETS, presetOf } from "./presets.ts";
import { WIRES, type WireType } from "./wire/index.ts";

export type ProviderType = WireType;

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
  /** AWS region (Bedrock) or Google Cloud location (Vertex AI). */
  region?: string;
  /** Google Cloud project (Vertex AI). */
  project?: string;
  /** Where the definition came from. */
  source: "builtin" | "config";
}

/**
 * Defaults of a provider configured in lobu.toml (`[providers.<id>] type = …`)
 * under an id that is not a built-in one of that type (presets.ts). `catalog`:
 * pi's catalogue provider for the type's service, where the type names one
 * service (a custom `anthropic` or `openai` endpoint may serve anything).
 */
const DEFAULTS: Record<ProviderType, { baseUrl?: string; defaultModel: string; catalog?: string }> =
  {
    anthropic: { baseUrl: "https://api.anthropic.com", defaultModel: "claude-sonnet-4-5" },
    openai: { baseUrl: "https://api.openai.com/v1", defaultModel: "gpt-4.1-mini" },
    "openai-responses": {
      baseUrl: "https://api.openai.com/v1",
      defaultModel: "gpt-5-mini",
      catalog: "openai",
    },
    gemini: {
      baseUrl: "https://generativelanguage.googleapis.com",
      defaultModel: "gemini-2.5-flash",
      catalog: "google",
    },
    // Region-specific: derived from `region` below.
    vertex: { defaultModel: "gemini-2.5-flash", catalog: "google-vertex" },
    bedrock: {
      defaultModel: "anthropic.claude-sonnet-4-5-20250929-v1:0",
      catalog: "amazon-bedrock",
    },
    // Per resource: base_url is required. Models are deployments, often named after the model.
    azure: { defaultModel: "gpt-4.1-mini", catalog: "azure-openai-responses" },
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
 * The key value stored for a local server configured without one: the relay
 * sends no credential for it (relay.ts), and people see "provided by the team".
 */
export const KEYLESS = "lobu-keyless-provider";

/**
 * Providers the gateway can relay to: the built-in ones (presets.ts; base URLs
 * overridable with `<NAME>_BASE_URL`) plus [providers.*] from lobu.toml (Vertex
 * AI, Bedrock, Azure OpenAI, the Responses API and more of every type;
 * docs/providers.md). Keys are not held here; see the secret store.
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
          hint: `Set type = "openai" (OpenAI-compatible), "anthropic", "openai-responses", "gemini", "vertex", "bedrock" or "azure"; built-in ids that need none: ${PRESETS.map((b) => b.id).join(", ")}.`,
        });
      }
      // A built-in id keeps its preset (catalogue, key variable) when the wire format is its own.
      const same = preset && preset.type === type ? preset : undefined;
      const known = this.providers.get(id);
      this.providers.set(id, {
        id,
        name: same?.name ?? id,
        type,
        baseUrl: (
          p.base_url ??
          (known?.type === type ? known.baseUrl : undefined) ??
          same?.baseUrl ??
          defaultBaseUrl(id, type, p.region)
        ).replace(/\/+$/, ""),
        keyEnv: p.api_key_env ?? same?.keyEnv,
        defaultModel:
          p.default_model ??
          (known?.type === type ? known.defaultModel : undefined) ??
          DEFAULTS[type].defaultModel,
        ...((same?.catalog ?? DEFAULTS[type].catalog)
          ? { catalog: same?.catalog ?? DEFAULTS[type].catalog }
          : {}),
        ...(same?.compat ? { compat: same.compat } : {}),
        keyOptional: same?.local === true,
        models: [...p.models],
        modelInfo: { ...p.model_info },
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
