import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  replyText,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiSettingsLink, openSettings } from "../settings/helpers.ts";

/**
 * The built-in OpenAI-compatible presets end to end, through a real gateway
 * and sandboxed worker: a person's own Groq key and model, picked on the
 * settings page, in a tool-using turn; and a keyless Ollama that gets no
 * credential at all. The providers are the mock LLM behind the presets' base
 * URL variables (it speaks the OpenAI wire format).
 */

const TEAM_KEY = "sk-openai-team-key-presets-0000000";
const OWN_GROQ_KEY = "gsk_own-key-of-rita-1234567890abcd";
let llm: MockLlm;
let local: MockLlm;
let gw: GatewayProcess;

beforeAll(async () => {
  llm = await startMockLlm();
  // Its own loopback address: the hosted providers' mock is on 127.0.0.1.
  local = await startMockLlm({ keyless: true, host: "127.0.0.2" });
  gw = await startGatewayProcess({
    toml: [
      "[network]",
      // Loopback opened on purpose: the local server must still not be reachable.
      'allow_private_ranges = ["127.0.0.0/8"]',
      // No provider of its own: every provider's host is considered for its sandboxes.
      "[agents.default]",
      'models = ["groq/*", "ollama/*", "deepseek/*"]',
      "[providers.ollama]",
      `base_url = "${local.openaiUrl}"`,
      'default_model = "qwen3:8b"',
    ].join("\n"),
    env: {
      OPENAI_API_KEY: TEAM_KEY,
      OPENAI_BASE_URL: llm.openaiUrl,
      GROQ_API_KEY: undefined,
      GROQ_BASE_URL: llm.openaiUrl,
      DEEPSEEK_API_KEY: "sk-deepseek-team-key-000000000000",
      DEEPSEEK_BASE_URL: llm.openaiUrl,
      ANTHROPIC_API_KEY: undefined,
      OLLAMA_API_KEY: undefined,
    },
  });
}, 120_000);

afterAll(async () => {
  await gw?.stop();
  await llm?.close();
  await local?.close();
});

function send(user: string, text: string) {
  return gw
    .api("/api/v1/agents/default/messages", {
      method: "POST",
      headers: { accept: "text/event-stream" },
      body: JSON.stringify({ user, text }),
    })
    .then(collectEvents);
}

describe("OpenAI-compatible presets", () => {
  it("runs a tool-using turn on Groq with the person's own key and the model they picked", async () => {
    const s = await openSettings(gw, await apiSettingsLink(gw, "rita"));
    // No Groq key anywhere yet: the picker offers none of its models.
    const before = (await (await s.call("GET", "/state")).json()) as {
      model: { choices: { provider: string }[] };
    };
    expect(before.model.choices.some((c) => c.provider === "groq")).toBe(false);
    expect((await s.call("PUT", "/keys/groq", { value: OWN_GROQ_KEY })).status).toBe(200);
    const picked = await s.call("PUT", "/model", {
      provider: "groq",
      model: "llama-3.3-70b-versatile",
    });
    expect(picked.status).toBe(200);
    const view = (await picked.json()) as {
      model: { choices: { provider: string; model: string; contextWindow: number }[] };
    };
    expect(view.model.choices).toContainEqual(
      expect.objectContaining({
        provider: "groq",
        model: "llama-3.3-70b-versatile",
        contextWindow: 131_072,
      }),
    );

    llm.when(
      (r) => r.lastUserText === "count the files",
      { toolCalls: [{ name: "bash", input: { command: "echo tool-ran-on-groq" } }] },
      (r) => ({ text: `tool said: ${r.toolResults[0]?.content.trim()}` }),
    );
    const events = await send("rita", "count the files");
    expect(replyText(events)).toBe("tool said: tool-ran-on-groq");
    const calls = llm.requests.filter((r) => r.lastUserText === "count the files");
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      expect([c.api, c.apiKey, c.model]).toEqual([
        "openai",
        OWN_GROQ_KEY,
        "llama-3.3-70b-versatile",
      ]);
      // The worker was told the catalogue's output limit for the model (within the agent's).
      expect(c.body.max_completion_tokens ?? c.body.max_tokens).toBeLessThanOrEqual(8192);
    }
    const usage = events.filter((e) => e.type === "usage") as { provider: string }[];
    expect(usage.map((u) => u.provider)).toEqual(["groq", "groq"]);
    // Another person has no Groq key: the team's OpenAI key and model.
    await send("sam", "who pays for me?");
    const sams = llm.requests.filter((r) => r.lastUserText === "who pays for me?").at(-1)!;
    expect([sams.apiKey, sams.model]).toEqual([TEAM_KEY, "gpt-4.1-mini"]);
  });

  it("sends a keyless Ollama (set up in lobu.toml) no credential at all", async () => {
    const s = await openSettings(gw, await apiSettingsLink(gw, "otto"));
    expect((await s.call("PUT", "/model", { provider: "ollama", model: "qwen3:8b" })).status).toBe(
      200,
    );
    const events = await send("otto", "hello local model");
    expect(replyText(events)).toBe("echo: hello local model");
    const call = local.requests.filter((r) => r.lastUserText === "hello local model").at(-1)!;
    expect(call.model).toBe("qwen3:8b");
    expect(call.apiKey).toBeUndefined();
    expect(call.headers.authorization).toBeUndefined();
    expect(JSON.stringify(call.headers)).not.toMatch(/lobu-keyless|lobu_secret_/i);
  });

  it("tells pi what the service behind the relay accepts (DeepSeek: max_tokens, no store, no developer role)", async () => {
    const s = await openSettings(gw, await apiSettingsLink(gw, "dee"));
    const put = await s.call("PUT", "/model", { provider: "deepseek", model: "deepseek-flash" });
    expect(put.status).toBe(200);
    const events = await send("dee", "hello deepseek");
    expect(replyText(events)).toBe("echo: hello deepseek");
    const call = llm.requests.filter((r) => r.lastUserText === "hello deepseek").at(-1)!;
    expect(call.model).toBe("deepseek-flash");
    expect(call.body.max_tokens).toBeGreaterThan(0);
    expect(call.body).not.toHaveProperty("max_completion_tokens");
    expect(call.body).not.toHaveProperty("store");
    const roles = (call.body.messages as { role: string }[]).map((m) => m.role);
    expect(roles).not.toContain("developer");
    // OpenAI itself (the team's default) keeps pi's defaults.
    await send("sam", "plain openai");
    const plain = llm.requests.filter((r) => r.lastUserText === "plain openai").at(-1)!;
    expect(plain.body).toHaveProperty("max_completion_tokens");
  });

  it("keeps sandboxes away from the local server itself: only the relay reaches it", async () => {
    const direct = `${local.openaiUrl}/models`;
    llm.when(
      (r) => r.lastUserText === "call ollama yourself",
      {
        toolCalls: [
          {
            name: "bash",
            input: { command: `curl -s -o /dev/null -w "status=%{http_code}" ${direct}; echo` },
          },
        ],
      },
      (r) => ({ text: `tool said: ${r.toolResults[0]?.content.trim()}` }),
    );
    const events = await send("sam", "call ollama yourself");
    // The egress proxy refuses the host (403); the server never sees the call.
    expect(replyText(events)).toMatch(/^tool said: status=403/);
    expect(local.requests.filter((r) => r.method === "GET")).toEqual([]);
  });
});
