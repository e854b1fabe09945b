import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStore, generateMasterKey, parseMasterKey, SecretStore } from "@lobu/gateway";
import { LOBU_BIN, type MockLlm, startMockLlm } from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * `lobu doctor` checks every configured provider with a cheap call (its model
 * listing) with the key the gateway would use, and prints one table with a
 * fix per problem. Providers are the mock LLM (OpenAI wire format) behind the
 * built-in presets' base URL variables.
 */

let hosted: MockLlm;
let local: MockLlm;

beforeAll(async () => {
  hosted = await startMockLlm({ apiKey: "sk-good-openai-key", models: ["gpt-4.1-mini"] });
  local = await startMockLlm({ keyless: true, models: ["qwen3:8b"] });
});

afterAll(async () => {
  await hosted?.close();
  await local?.close();
});

function doctor(cwd: string, env: Record<string, string | undefined>) {
  return new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, [LOBU_BIN, "doctor", "--data-dir", join(cwd, "data")], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.on("close", (code) => resolve({ code, stdout }));
  });
}

describe("lobu doctor: providers", () => {
  it("prints a table of each configured provider's check, with fixes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-providers-"));
    const r = await doctor(dir, {
      ANTHROPIC_API_KEY: undefined,
      OPENAI_API_KEY: "sk-good-openai-key",
      OPENAI_BASE_URL: hosted.openaiUrl,
      GROQ_API_KEY: "gsk-wrong-key",
      GROQ_BASE_URL: hosted.openaiUrl,
      // Nothing listens there: connection refused.
      MISTRAL_API_KEY: "mistral-key",
      MISTRAL_BASE_URL: `http://127.0.0.1:${await closedPort()}/v1`,
      OLLAMA_BASE_URL: local.openaiUrl,
      OPENROUTER_API_KEY: undefined,
      DEEPSEEK_API_KEY: undefined,
      XAI_API_KEY: undefined,
      VLLM_BASE_URL: undefined,
    });
    const lines = r.stdout.split("\n");
    const row = (id: string) => lines.find((l) => new RegExp(`^\\s+[✓!✗] ${id}\\s`).test(l)) ?? "";
    expect(r.stdout).toMatch(/✗ providers: 4 configured/);
    expect(row("openai")).toMatch(
      /✓ openai\s+OPENAI_API_KEY\s+http:\/\/127\.0\.0\.1:\d+\/v1\s+key accepted, 1 models/,
    );
    expect(row("groq")).toMatch(/✗ groq\s+GROQ_API_KEY\s+.*key rejected \(HTTP 401\)/);
    expect(row("mistral")).toMatch(/✗ mistral\s+MISTRAL_API_KEY\s+.*unreachable \(ECONNREFUSED\)/);
    expect(row("ollama")).toMatch(
      /! ollama\s+none needed\s+.*key accepted, 1 models, not "llama3\.1"/,
    );
    expect(r.stdout).toContain("groq: check GROQ_API_KEY (keys: https://console.groq.com/keys)");
    expect(r.stdout).toContain("mistral: check the network, or set MISTRAL_BASE_URL");
    expect(r.stdout).toContain("ollama: load the model on the server (ollama pull llama3.1)");
    expect(r.stdout).toMatch(
      /providers without a key: anthropic \(ANTHROPIC_API_KEY\), gemini \(GEMINI_API_KEY\), openrouter/,
    );
    // The key itself is never printed.
    expect(r.stdout).not.toContain("sk-good-openai-key");
    expect(r.code).toBe(1);
  }, 120_000);

  it("checks Gemini with its model listing (key in x-goog-api-key); Vertex AI and Bedrock keys set, not contacted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-wires-"));
    writeFileSync(
      join(dir, "lobu.toml"),
      [
        "[providers.gem2]",
        'type = "gemini"',
        'api_key_env = "GEMINI_KEY_2"',
        `base_url = "${hosted.url}"`,
        "[providers.vx]",
        'type = "vertex"',
        'api_key_env = "VERTEX_SA_KEY"',
        `base_url = "${hosted.url}"`,
        "[providers.aws]",
        'type = "bedrock"',
        'api_key_env = "AWS_PAIR"',
        `base_url = "${hosted.url}"`,
        "",
      ].join("\n"),
    );
    const r = await doctor(dir, {
      ANTHROPIC_API_KEY: undefined,
      OPENAI_API_KEY: undefined,
      GROQ_API_KEY: undefined,
      MISTRAL_API_KEY: undefined,
      OLLAMA_BASE_URL: undefined,
      OPENROUTER_API_KEY: undefined,
      DEEPSEEK_API_KEY: undefined,
      XAI_API_KEY: undefined,
      VLLM_BASE_URL: undefined,
      GEMINI_API_KEY: "sk-good-openai-key",
      GEMINI_BASE_URL: hosted.url,
      GEMINI_KEY_2: "wrong-gemini-key",
      VERTEX_SA_KEY: '{"type":"service_account"}',
      AWS_PAIR: "AKIDEXAMPLE:secret",
    });
    const lines = r.stdout.split("\n");
    const row = (id: string) => lines.find((l) => new RegExp(`^\\s+[✓!✗] ${id}\\s`).test(l)) ?? "";
    // The mock serves gpt-4.1-mini only: the key works, Gemini's default model is missing.
    expect(row("gemini")).toMatch(
      /! gemini\s+GEMINI_API_KEY\s+http:\/\/127\.0\.0\.1:\d+\s+key accepted, 1 models, not "gemini-2\.5-flash"/,
    );
    expect(row("gem2")).toMatch(/✗ gem2\s+GEMINI_KEY_2\s+.*key rejected \(HTTP 400\)/);
    expect(row("vx")).toMatch(/✓ vx\s+VERTEX_SA_KEY\s+.*key set, not contacted \(vertex\)/);
    expect(row("aws")).toMatch(/✓ aws\s+AWS_PAIR\s+.*key set, not contacted \(bedrock\)/);
    const listing = hosted.requests.filter((q) => q.path.startsWith("/v1beta/models"));
    expect(listing.map((q) => q.headers["x-goog-api-key"])).toEqual(
      expect.arrayContaining(["sk-good-openai-key", "wrong-gemini-key"]),
    );
    expect(r.stdout).not.toContain("wrong-gemini-key");
  }, 120_000);

  it("checks the installation key the gateway stored (secret store), not only the environment", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-stored-"));
    const masterKey = generateMasterKey();
    mkdirSync(join(dir, "data"), { recursive: true, mode: 0o700 });
    const store = await createStore({ driver: "sqlite", path: join(dir, "data", "lobu.db") });
    await new SecretStore(store.kv, parseMasterKey(masterKey, "test")).set(
      { scope: { kind: "installation" }, name: "provider.openai" },
      "sk-good-openai-key",
    );
    await store.close();
    const r = await doctor(dir, {
      LOBU_MASTER_KEY: masterKey,
      OPENAI_API_KEY: undefined,
      OPENAI_BASE_URL: hosted.openaiUrl,
      ANTHROPIC_API_KEY: undefined,
      GROQ_API_KEY: undefined,
      MISTRAL_API_KEY: undefined,
      OLLAMA_BASE_URL: undefined,
      OPENROUTER_API_KEY: undefined,
      DEEPSEEK_API_KEY: undefined,
      XAI_API_KEY: undefined,
      VLLM_BASE_URL: undefined,
    });
    expect(r.stdout).toMatch(/✓ providers: 1 configured/);
    expect(r.stdout).toMatch(
      /✓ openai\s+secret store\s+http:\/\/127\.0\.0\.1:\d+\/v1\s+key accepted/,
    );
    expect(r.stdout).not.toContain("sk-good-openai-key");
  }, 120_000);

  it("makes no master key in a data dir whose key it was not given", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-nokey-"));
    mkdirSync(join(dir, "data"), { recursive: true, mode: 0o700 });
    const store = await createStore({ driver: "sqlite", path: join(dir, "data", "lobu.db") });
    await store.close();
    const r = await doctor(dir, { LOBU_MASTER_KEY: undefined, OPENAI_API_KEY: undefined });
    expect(r.stdout).toMatch(/All checks passed|No problems|problem/);
    expect(existsSync(join(dir, "data", "master.key"))).toBe(false);
  }, 120_000);
});
