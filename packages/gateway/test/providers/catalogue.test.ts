import { isLobuError, parseConfig } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { TurnContextBuilder } from "../../src/agents/context.ts";
import { agentReferenceProblems } from "../../src/agents/references.ts";
import type { AgentDefinition } from "../../src/agents/registry.ts";
import { ModelCatalog, UNKNOWN_MODEL } from "../../src/providers/catalog.ts";
import { ModelAccess, modelMatches } from "../../src/providers/model-access.ts";
import { PRESETS } from "../../src/providers/presets.ts";
import { ProviderRegistry } from "../../src/providers/registry.ts";
import { agentFailoverTargets } from "../../src/runtime/failover.ts";
import type { SkillCatalog } from "../../src/skills/catalog.ts";
import { estimateCost } from "../../src/usage/prices.ts";

/**
 * The built-in providers (a table of presets), pi's model catalogue under
 * them, and which models an operator allows each agent.
 */

const registry = (toml = "", env: NodeJS.ProcessEnv = {}) =>
  new ProviderRegistry(parseConfig(toml), env);

describe("provider presets", () => {
  it("registers the hosted OpenAI-compatible services on the openai wire, local servers only when set up", () => {
    const r = registry();
    expect(r.list().map((p) => p.id)).toEqual([
      "anthropic",
      "openai",
      "gemini",
      "openrouter",
      "mistral",
      "groq",
      "deepseek",
      "xai",
    ]);
    for (const id of ["openrouter", "mistral", "groq", "deepseek", "xai"]) {
      expect(r.get(id)).toMatchObject({ type: "openai", keyOptional: false, source: "builtin" });
      expect(r.get(id)!.baseUrl).toMatch(/^https:\/\//);
    }
    expect(r.get("groq")).toMatchObject({
      baseUrl: "https://api.groq.com/openai/v1",
      keyEnv: "GROQ_API_KEY",
      catalog: "groq",
    });
    // Every preset's default model is in its catalogue (a stale preset fails here).
    const catalog = new ModelCatalog();
    for (const p of r.list()) expect(catalog.has(p, p.defaultModel), p.id).toBe(true);
    expect(PRESETS.filter((p) => p.local).map((p) => p.id)).toEqual(["ollama", "vllm"]);
  });

  it("describes each wire type's service from pi's catalogue: Gemini built in, Vertex AI, Bedrock, Azure and Responses from lobu.toml", () => {
    const r = registry(
      [
        '[providers.vx]\ntype = "vertex"\nregion = "europe-west4"\nproject = "acme"',
        '[providers.aws]\ntype = "bedrock"\nregion = "eu-west-1"',
        '[providers.az]\ntype = "azure"\nbase_url = "https://acme.openai.azure.com"',
        '[providers.resp]\ntype = "openai-responses"',
        '[providers.gem2]\ntype = "gemini"\napi_key_env = "GEMINI_KEY_2"',
        '[providers.corp]\ntype = "openai"\nbase_url = "https://llm.corp.example/v1"',
      ].join("\n"),
    );
    expect(r.get("gemini")).toMatchObject({
      name: "Google Gemini",
      type: "gemini",
      keyEnv: "GEMINI_API_KEY",
      catalog: "google",
      source: "builtin",
    });
    expect(r.get("vx")).toMatchObject({
      catalog: "google-vertex",
      baseUrl: "https://europe-west4-aiplatform.googleapis.com",
      region: "europe-west4",
      project: "acme",
    });
    expect(r.get("aws")).toMatchObject({
      catalog: "amazon-bedrock",
      baseUrl: "https://bedrock-runtime.eu-west-1.amazonaws.com",
    });
    expect(r.get("az")).toMatchObject({ catalog: "azure-openai-responses" });
    expect(r.get("resp")).toMatchObject({ catalog: "openai" });
    expect(r.get("gem2")).toMatchObject({ catalog: "google", keyEnv: "GEMINI_KEY_2" });
    // A custom endpoint of a general wire may serve anything: no catalogue.
    expect(r.get("corp")?.catalog).toBeUndefined();
    const catalog = new ModelCatalog();
    for (const id of ["gemini", "vx", "aws", "az", "resp", "gem2"]) {
      const p = r.get(id)!;
      expect(catalog.has(p, p.defaultModel), id).toBe(true);
      expect(catalog.info(p, p.defaultModel).price, id).not.toBeNull();
    }
    // Chat Completions settings (compat) are only for the openai wire.
    expect(catalog.info(r.get("resp")!, "gpt-5-mini").compat).toBeUndefined();
  });

  it("offers Ollama and vLLM once their base URL is set or lobu.toml names them, key optional", () => {
    const r = registry('[providers.vllm]\ndefault_model = "Qwen/Qwen3-8B"\n', {
      OLLAMA_BASE_URL: "http://gpu-box:11434/v1/",
      OLLAMA_MODEL: "qwen3:8b",
    });
    expect(r.get("ollama")).toMatchObject({
      type: "openai",
      baseUrl: "http://gpu-box:11434/v1",
      defaultModel: "qwen3:8b",
      keyOptional: true,
    });
    expect(r.get("vllm")).toMatchObject({
      baseUrl: "http://127.0.0.1:8000/v1",
      defaultModel: "Qwen/Qwen3-8B",
      keyOptional: true,
      source: "config",
    });
  });

  it("takes a preset's id without a type, and refuses an unknown id without one", () => {
    const r = registry('[providers.groq]\nmodels = ["llama-3.3*"]\n', {
      GROQ_BASE_URL: "http://127.0.0.1:1/v1",
    });
    expect(r.get("groq")).toMatchObject({
      type: "openai",
      keyEnv: "GROQ_API_KEY",
      catalog: "groq",
      baseUrl: "http://127.0.0.1:1/v1",
      models: ["llama-3.3*"],
    });
    try {
      registry('[providers.corp]\nbase_url = "https://llm.corp.example/v1"\n');
      expect.unreachable();
    } catch (err) {
      expect(isLobuError(err) && err.code).toBe("config_invalid");
      expect((err as Error).message).toContain("[providers.corp] needs a type");
    }
  });
});

describe("model catalogue", () => {
  const catalog = new ModelCatalog();
  it("describes a model from pi's registry: context, output, images, prices", () => {
    const info = catalog.info(registry().get("anthropic")!, "claude-sonnet-4-5");
    expect(info).toMatchObject({
      known: true,
      images: true,
      reasoning: true,
      price: { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 },
    });
    expect(info.contextWindow).toBeGreaterThanOrEqual(200_000);
    expect(info.maxOutputTokens).toBeGreaterThanOrEqual(8_192);
    expect(catalog.info(registry().get("groq")!, "llama-3.3-70b-versatile")).toMatchObject({
      images: false,
      contextWindow: 131_072,
    });
  });

  it("carries pi's request settings for OpenAI-compatible services: the preset's, then the model's own", () => {
    const r = registry();
    expect(catalog.info(r.get("deepseek")!, "deepseek-flash").compat).toMatchObject({
      maxTokensField: "max_tokens",
      supportsStore: false,
      thinkingFormat: "deepseek",
    });
    expect(
      catalog.info(r.get("openrouter")!, "meta-llama/llama-3.3-70b-instruct").compat,
    ).toMatchObject({ thinkingFormat: "openrouter", supportsDeveloperRole: false });
    // OpenAI and Anthropic keep pi's own defaults.
    expect(catalog.info(r.get("openai")!, "gpt-4.1-mini").compat).toBeUndefined();
    expect(catalog.info(r.get("anthropic")!, "claude-sonnet-4-5").compat).toBeUndefined();
  });

  it("falls back for an unknown model, and takes lobu.toml's model_info over both", () => {
    const r = registry(
      [
        "[providers.ollama]",
        '[providers.ollama.model_info."qwen3:8b"]',
        "context_window = 40960",
        "images = true",
        '[providers.anthropic.model_info."claude-sonnet-4-5"]',
        "max_output_tokens = 4096",
      ].join("\n"),
    );
    expect(catalog.info(r.get("ollama")!, "llama3.1")).toMatchObject({
      known: false,
      price: null,
      ...UNKNOWN_MODEL,
    });
    expect(catalog.info(r.get("ollama")!, "qwen3:8b")).toMatchObject({
      contextWindow: 40_960,
      maxOutputTokens: UNKNOWN_MODEL.maxOutputTokens,
      images: true,
    });
    expect(catalog.info(r.get("anthropic")!, "claude-sonnet-4-5").maxOutputTokens).toBe(4096);
  });

  it("prices usage from the catalogue where [prices] names nothing; [prices] wins", () => {
    const r = registry();
    const price = (provider: string, model: string) =>
      catalog.info(r.get(provider)!, model).price ?? undefined;
    const counts = {
      inputTokens: 1_000_000,
      outputTokens: 1_000_000,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
    };
    expect(estimateCost({}, "openai", "gpt-4.1-mini", counts, price)).toBeCloseTo(2.0);
    expect(
      estimateCost(
        { "openai/gpt-4.1*": { input: 1, output: 1 } },
        "openai",
        "gpt-4.1-mini",
        counts,
        price,
      ),
    ).toBe(2);
    expect(estimateCost({}, "openai", "my-finetune", counts, price)).toBeNull();
  });
});

describe("allowed models", () => {
  const catalog = new ModelCatalog();
  const access = (toml: string) => {
    const config = parseConfig(toml);
    return new ModelAccess(config, new ProviderRegistry(config, {}), catalog);
  };

  it("with no list anywhere: every catalogue model, the default, and anything of a custom provider", () => {
    const a = access(
      '[providers.corp]\ntype = "openai"\nbase_url = "https://llm.corp.example/v1"\n',
    );
    expect(a.open("default")).toBe(true);
    expect(a.allowsModel("default", { provider: "anthropic", model: "claude-opus-4-5" })).toBe(
      true,
    );
    expect(a.allowsModel("default", { provider: "anthropic", model: "claude-made-up" })).toBe(
      false,
    );
    expect(a.allowsModel("default", { provider: "corp", model: "whatever-they-serve" })).toBe(true);
    expect(a.allowsModel("default", { provider: "nope", model: "x" })).toBe(false);
    expect(a.allowsProvider("default", "groq")).toBe(true);
    expect(a.relayModels("default", "anthropic")).toEqual([]);
  });

  it("with a list: only what it names (provider/model, provider/*, prefixes, bare ids), plus the agent's own", () => {
    const a = access(
      [
        "[agents.default]",
        'models = ["anthropic/claude-haiku-4-5", "openai/gpt-4.1*", "groq/*", "shared-model", "openrouter/meta-llama/llama-3.3-70b-instruct"]',
        "[agents.other]",
        "[providers.mistral]",
        'models = ["mistral-small*"]',
      ].join("\n"),
    );
    const allows = (provider: string, model: string) =>
      a.allowsModel("default", { provider, model });
    expect(allows("anthropic", "claude-haiku-4-5")).toBe(true);
    expect(allows("anthropic", "claude-opus-4-5")).toBe(false);
    expect(allows("openai", "gpt-4.1-nano")).toBe(true);
    expect(allows("openai", "gpt-5")).toBe(false);
    expect(allows("groq", "anything")).toBe(true);
    expect(allows("xai", "shared-model")).toBe(true);
    expect(allows("openrouter", "meta-llama/llama-3.3-70b-instruct")).toBe(true);
    expect(allows("mistral", "mistral-small-latest")).toBe(true);
    expect(allows("mistral", "mistral-large-latest")).toBe(false);
    // The operator's own choice for the agent is always allowed.
    expect(
      a.allowsModel(
        "default",
        { provider: "anthropic", model: "claude-opus-4-5" },
        { provider: "anthropic", model: "claude-opus-4-5" },
      ),
    ).toBe(true);
    expect(a.allowsProvider("default", "deepseek")).toBe(true); // the bare id may be anywhere
    expect(a.relayModels("default", "openai")).toEqual(["gpt-4.1*", "shared-model"]);
    // [providers.mistral] models applies to every agent; the agent's own list only to it.
    expect(a.open("other")).toBe(false);
    expect(a.allowsModel("other", { provider: "mistral", model: "mistral-small-2506" })).toBe(true);
    expect(a.allowsModel("other", { provider: "groq", model: "x" })).toBe(false);
    expect(a.allowsProvider("other", "groq")).toBe(false);
    const choices = a.choices("default", ["openai", "groq"]).map((m) => `${m.provider}/${m.id}`);
    expect(choices).toEqual(
      expect.arrayContaining([
        "openai/gpt-4.1",
        "openai/gpt-4.1-mini",
        "groq/llama-3.1-8b-instant",
      ]),
    );
    expect(choices).not.toContain("openai/gpt-5");
  });

  it("matches a pattern exactly or as a prefix", () => {
    expect(modelMatches("gpt-4.1*", "gpt-4.1-mini")).toBe(true);
    expect(modelMatches("gpt-4.1*", "gpt-4")).toBe(false);
    expect(modelMatches("gpt-4.1", "gpt-4.1-mini")).toBe(false);
    expect(modelMatches("*", "x")).toBe(true);
  });
});

describe("fallbacks", () => {
  const toml = [
    "[agents.default]",
    'provider = "openai"',
    'fallback = ["anthropic/claude-haiku-4-5", "groq/llama-3.3-70b-versatile", "xai/grok-4.3", "openai/gpt-4.1-mini"]',
    "[agents.loose]",
    'fallback = ["anthropic/claude-haiku-4-5", "groq/llama-3.3-70b-versatile"]',
  ].join("\n");
  const config = parseConfig(toml);
  const providers = new ProviderRegistry(config, {});

  it("refuses at start a fallback of another wire format than the agent's provider, or an unknown provider", () => {
    const skills = { get: () => undefined } as unknown as SkillCatalog;
    expect(agentReferenceProblems(config.agents.default!, providers, skills)).toEqual([
      expect.stringContaining(
        'fallback "anthropic/claude-haiku-4-5": anthropic speaks the anthropic API and openai the openai one',
      ),
    ]);
    expect(agentReferenceProblems({ fallback: ["nope/model"] }, providers, skills)[0]).toContain(
      'provider "nope" is not defined',
    );
  });

  it("tries same-wire fallbacks that have a key for the sender, skipping the failed model itself", async () => {
    const keys: Record<string, string> = { "provider.groq": "gsk", "provider.anthropic": "ant" };
    const targets = agentFailoverTargets({
      config,
      providers,
      secrets: {
        resolve: async (name: string) =>
          keys[name] ? ({ value: keys[name] } as Awaited<ReturnType<never>>) : null,
      } as never,
    });
    // An agent without its own provider: the primary's wire decides (anthropic skipped here).
    const got = await targets(
      {
        sandboxId: "s",
        agentId: "loose",
        userKey: "api::a",
        provider: "openai",
        model: "gpt-4.1-mini",
      },
      "openai",
    );
    expect(got.map((t) => [t.provider.id, t.model, t.key])).toEqual([
      ["groq", "llama-3.3-70b-versatile", "gsk"],
    ]);
    // xai has no key; the primary itself is not its own fallback.
    const own = await targets(
      { sandboxId: "s", agentId: "default", provider: "openai", model: "gpt-4.1-mini" },
      "openai",
    );
    expect(own.map((t) => t.provider.id)).toEqual(["groq"]);
  });
});

describe("a turn's model", () => {
  const config = parseConfig(
    '[agents.default]\nprovider = "anthropic"\nmodel = "claude-sonnet-4-5"\nmodels = ["anthropic/claude-haiku-4-5"]\n',
  );
  const providers = new ProviderRegistry(config, {});
  const builder = new TurnContextBuilder({
    access: new ModelAccess(config, providers, new ModelCatalog()),
  } as unknown as ConstructorParameters<typeof TurnContextBuilder>[0]);
  const agent = {
    id: "default",
    provider: "anthropic",
    model: "claude-sonnet-4-5",
  } as AgentDefinition;
  const anthropic = providers.get("anthropic")!;

  it("is the person's choice while the operator allows it, else the agent's own", () => {
    expect(builder.modelFor(agent, anthropic, "claude-haiku-4-5")).toBe("claude-haiku-4-5");
    // Stored before lobu.toml stopped allowing it: not used.
    expect(builder.modelFor(agent, anthropic, "claude-opus-4-5")).toBe("claude-sonnet-4-5");
    expect(builder.modelFor(agent, anthropic, undefined)).toBe("claude-sonnet-4-5");
    // On another provider than the agent's, the agent's model means nothing: that provider's default.
    expect(builder.modelFor(agent, providers.get("openai")!, undefined)).toBe("gpt-4.1-mini");
  });
});
