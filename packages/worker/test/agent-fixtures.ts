import type { TurnContext } from "@lobu/core";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { ShellPool } from "../src/virtual/index.ts";

/**
 * What the worker's agent tests share: the mock LLM over HTTP (reset before each
 * test), one shell thread for the virtual workspaces, and a turn's context.
 */
export function agentFixtures(): { readonly llm: MockLlm; readonly shells: ShellPool } {
  let llm: MockLlm | undefined;
  const shells = new ShellPool({ threads: 1 });
  beforeAll(async () => {
    llm = await startMockLlm();
  });
  afterAll(async () => {
    await llm?.close();
    await shells.close();
  });
  beforeEach(() => llm?.reset());
  return {
    get llm() {
      if (!llm) throw new Error("the mock LLM starts in beforeAll");
      return llm;
    },
    shells,
  };
}

/** A turn on the mock model (any path ending in /v1/messages), `endpoint` below the gateway URL. */
export function turnContext(overrides: Partial<TurnContext> = {}, endpoint = "/pool"): TurnContext {
  return {
    agentId: "a",
    model: {
      provider: "mock",
      api: "anthropic-messages",
      id: "m",
      endpoint,
      apiKey: "lobu_secret_placeholder",
      contextWindow: 200_000,
      maxTokens: 1000,
    },
    systemPrompt: "You are a test agent.",
    tools: ["bash", "read", "write"],
    toolPolicy: {},
    skills: [],
    env: {},
    requestTimeoutSec: 60,
    ...overrides,
  };
}
