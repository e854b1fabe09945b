import type { ProviderType } from "./registry.ts";

/**
 * The built-in providers: where each one is, which environment variables
 * configure it, and where its models are described in pi's model catalogue.
 * Every OpenAI-compatible service is a row here, not code: the relay speaks
 * the `openai` wire format (Chat Completions, Bearer key) to all of them; the
 * other wire formats (wire/<type>.ts) are rows of their own type (Gemini), or
 * configured in lobu.toml only (Vertex AI, Bedrock, Azure: registry.ts DEFAULTS).
 */
export interface ProviderPreset {
  id: string;
  /** Shown on the settings page and by `lobu doctor`. */
  name: string;
  type: ProviderType;
  baseUrl: string;
  /** The installation key. */
  keyEnv: string;
  /** Overrides `baseUrl` (a proxy, a compatible endpoint, a local server elsewhere). */
  baseEnv: string;
  defaultModel: string;
  /** Overrides `defaultModel` (local servers serve whatever model they loaded). */
  modelEnv?: string;
  /** pi's catalogue provider whose models this one serves (`getBuiltinModels(catalog)`). */
  catalog?: string;
  /**
   * A local server (Ollama, vLLM): its key is optional, and it is offered only
   * when configured (its base URL variable set, or `[providers.<id>]` in lobu.toml),
   * so a gateway never points agents at a loopback port nobody set up.
   */
  local?: boolean;
  /** Where the operator gets a key. */
  keyUrl?: string;
  /**
   * pi's request settings for this service (the worker's pi sees only the
   * relay's URL, so it cannot detect them): which fields it takes, which
   * roles, how reasoning is asked for. Mirrors pi's own detection.
   */
  compat?: Record<string, unknown>;
}

export const PRESETS: readonly ProviderPreset[] = [
  {
    id: "anthropic",
    name: "Anthropic",
    type: "anthropic",
    baseUrl: "https://api.anthropic.com",
    keyEnv: "ANTHROPIC_API_KEY",
    baseEnv: "ANTHROPIC_BASE_URL",
    defaultModel: "claude-sonnet-4-5",
    catalog: "anthropic",
    keyUrl: "https://console.anthropic.com/settings/keys",
  },
  {
    id: "openai",
    name: "OpenAI",
    type: "openai",
    baseUrl: "https://api.openai.com/v1",
    keyEnv: "OPENAI_API_KEY",
    baseEnv: "OPENAI_BASE_URL",
    defaultModel: "gpt-4.1-mini",
    catalog: "openai",
    keyUrl: "https://platform.openai.com/api-keys",
  },
  {
    id: "gemini",
    name: "Google Gemini",
    type: "gemini",
    baseUrl: "https://generativelanguage.googleapis.com",
    keyEnv: "GEMINI_API_KEY",
    baseEnv: "GEMINI_BASE_URL",
    defaultModel: "gemini-2.5-flash",
    catalog: "google",
    keyUrl: "https://aistudio.google.com/apikey",
  },
  {
    id: "openrouter",
    name: "OpenRouter",
    type: "openai",
    baseUrl: "https://openrouter.ai/api/v1",
    keyEnv: "OPENROUTER_API_KEY",
    baseEnv: "OPENROUTER_BASE_URL",
    defaultModel: "anthropic/claude-sonnet-4.5",
    catalog: "openrouter",
    keyUrl: "https://openrouter.ai/settings/keys",
    compat: { supportsDeveloperRole: false, thinkingFormat: "openrouter" },
  },
  {
    id: "mistral",
    name: "Mistral",
    type: "openai",
    baseUrl: "https://api.mistral.ai/v1",
    keyEnv: "MISTRAL_API_KEY",
    baseEnv: "MISTRAL_BASE_URL",
    defaultModel: "mistral-medium-latest",
    catalog: "mistral",
    keyUrl: "https://console.mistral.ai/api-keys",
    compat: {
      supportsStore: false,
      supportsDeveloperRole: false,
      supportsReasoningEffort: false,
      maxTokensField: "max_tokens",
    },
  },
  {
    id: "groq",
    name: "Groq",
    type: "openai",
    baseUrl: "https://api.groq.com/openai/v1",
    keyEnv: "GROQ_API_KEY",
    baseEnv: "GROQ_BASE_URL",
    defaultModel: "llama-3.3-70b-versatile",
    catalog: "groq",
    keyUrl: "https://console.groq.com/keys",
    compat: { supportsStore: false, supportsDeveloperRole: false },
  },
  {
    id: "deepseek",
    name: "DeepSeek",
    type: "openai",
    baseUrl: "https://api.deepseek.com",
    keyEnv: "DEEPSEEK_API_KEY",
    baseEnv: "DEEPSEEK_BASE_URL",
    defaultModel: "deepseek-flash",
    catalog: "deepseek",
    keyUrl: "https://platform.deepseek.com/api_keys",
    compat: {
      supportsStore: false,
      supportsDeveloperRole: false,
      maxTokensField: "max_tokens",
      thinkingFormat: "deepseek",
      requiresReasoningContentOnAssistantMessages: true,
    },
  },
  {
    id: "xai",
    name: "xAI",
    type: "openai",
    baseUrl: "https://api.x.ai/v1",
    keyEnv: "XAI_API_KEY",
    baseEnv: "XAI_BASE_URL",
    defaultModel: "grok-4.3",
    catalog: "xai",
    keyUrl: "https://console.x.ai",
    compat: { supportsStore: false, supportsDeveloperRole: false, supportsReasoningEffort: false },
  },
  {
    id: "ollama",
    name: "Ollama",
    type: "openai",
    baseUrl: "http://127.0.0.1:11434/v1",
    keyEnv: "OLLAMA_API_KEY",
    baseEnv: "OLLAMA_BASE_URL",
    defaultModel: "llama3.1",
    modelEnv: "OLLAMA_MODEL",
    local: true,
    compat: { supportsStore: false, supportsDeveloperRole: false },
  },
  {
    id: "vllm",
    name: "vLLM",
    type: "openai",
    baseUrl: "http://127.0.0.1:8000/v1",
    keyEnv: "VLLM_API_KEY",
    baseEnv: "VLLM_BASE_URL",
    defaultModel: "default",
    modelEnv: "VLLM_MODEL",
    local: true,
    compat: { supportsStore: false, supportsDeveloperRole: false },
  },
];

export function presetOf(id: string): ProviderPreset | undefined {
  return PRESETS.find((p) => p.id === id);
}
