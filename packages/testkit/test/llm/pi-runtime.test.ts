import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createAgentSession,
  ModelRuntime,
  SessionManager,
  SettingsManager,
} from "@earendil-works/pi-coding-agent";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/** The real pi agent loop, with the mock as its provider: a tool turn, then a text turn. */

let llm: MockLlm;
let tmp: string;

beforeEach(async () => {
  llm = await startMockLlm({ apiKey: "k" });
  tmp = await mkdtemp(join(tmpdir(), "lobu-mock-llm-pi-"));
});
afterEach(async () => {
  await llm.close();
  await rm(tmp, { recursive: true, force: true });
});

async function piSession(api: "anthropic-messages" | "openai-completions", baseUrl: string) {
  const modelRuntime = await ModelRuntime.create({
    authPath: join(tmp, "auth.json"),
    modelsPath: null,
  });
  modelRuntime.registerProvider("mock", {
    baseUrl,
    apiKey: "k",
    api,
    models: [
      {
        id: "m",
        name: "m",
        reasoning: false,
        input: ["text"],
        cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
        contextWindow: 200000,
        maxTokens: 8000,
      },
    ],
  });
  const { session } = await createAgentSession({
    cwd: tmp,
    agentDir: join(tmp, ".pi"),
    model: modelRuntime.getModel("mock", "m"),
    thinkingLevel: "off",
    modelRuntime,
    tools: ["bash"],
    sessionManager: SessionManager.inMemory(tmp),
    settingsManager: SettingsManager.inMemory({ compaction: { enabled: false } }),
  });
  return session;
}

describe.each([
  {
    api: "anthropic-messages" as const,
    base: (l: MockLlm) => l.url,
    wire: "anthropic",
    idPrefix: "toolu_",
  },
  {
    api: "openai-completions" as const,
    base: (l: MockLlm) => l.openaiUrl,
    wire: "openai",
    idPrefix: "call_",
  },
])("pi agent loop over $api", ({ api, base, wire, idPrefix }) => {
  it("runs a bash tool call and sends its result back", async () => {
    llm.script(
      { toolCalls: [{ name: "bash", input: { command: "echo hello" } }] },
      { text: "All done." },
    );
    const session = await piSession(api, base(llm));
    try {
      await session.prompt("hi");
      expect(session.getLastAssistantText()).toBe("All done.");
    } finally {
      session.dispose();
    }

    expect(llm.requests).toHaveLength(2);
    const [first, second] = llm.requests;
    expect(first).toMatchObject({
      api: wire,
      apiKey: "k",
      model: "m",
      lastUserText: "hi",
      toolResults: [],
    });
    expect(JSON.stringify(first?.body.tools)).toContain("bash");
    expect(first?.body.stream).toBe(true);
    expect(second?.lastUserText).toBe("hi");
    expect(second?.toolResults).toHaveLength(1);
    expect(second?.toolResults[0]?.id).toMatch(new RegExp(`^${idPrefix}`));
    expect(second?.toolResults[0]?.content.trim()).toBe("hello");
    expect(second?.toolResults[0]?.isError).toBe(false);
  });

  it("can be aborted mid-turn while the mock hangs", async () => {
    llm.script({ hang: true });
    const session = await piSession(api, base(llm));
    try {
      const prompting = session.prompt("wait");
      const [req] = await llm.waitForRequests(1);
      await session.abort();
      await prompting;
      await vi.waitFor(() => expect(req?.aborted).toBe(true));
    } finally {
      session.dispose();
    }
  });

  it("answers an unscripted prompt with the echo reply", async () => {
    const session = await piSession(api, base(llm));
    try {
      await session.prompt("say something");
      expect(session.getLastAssistantText()).toBe("echo: say something");
    } finally {
      session.dispose();
    }
  });
});
