import { join } from "node:path";
import {
  type AgentSession,
  createAgentSession,
  ModelRuntime,
  SessionManager,
  SettingsManager,
} from "@earendil-works/pi-coding-agent";
import { skipUnobservedContextCopy } from "../../src/context-copy.ts";
import { type PiModel, registerModel } from "../../src/model.ts";
import { type VirtualWorkspace, virtualSessionOptions } from "../../src/virtual/index.ts";

/**
 * pi sessions on the virtual tier, talking to a model at `baseUrl` (the mock LLM).
 * Shared by the tests and bench/virtual-sessions.bench.ts, so no vitest in here.
 */
export interface VirtualPi {
  modelRuntime: ModelRuntime;
  model: PiModel;
  /**
   * A fresh in-memory pi session over `ws`, tuned as the worker tunes its own
   * (`piCopy`: keep pi's per-call copy of the conversation, to compare against).
   */
  session(
    ws: VirtualWorkspace,
    agentDir: string,
    opts?: { piCopy?: boolean },
  ): Promise<AgentSession>;
}

export async function virtualPi(runtimeDir: string, baseUrl: string): Promise<VirtualPi> {
  const modelRuntime = await ModelRuntime.create({
    authPath: join(runtimeDir, "auth.json"),
    modelsPath: null,
  });
  const model = registerModel(modelRuntime, {
    providerId: "mock",
    baseUrl,
    apiKey: "k",
    api: "anthropic-messages",
    id: "m",
    contextWindow: 200_000,
    maxTokens: 8_000,
  });
  return {
    modelRuntime,
    model,
    async session(ws, agentDir, opts = {}) {
      const options = virtualSessionOptions(ws, { systemPrompt: "You are a helpful agent." });
      const { session } = await createAgentSession({
        ...options,
        agentDir,
        model,
        thinkingLevel: "off",
        modelRuntime,
        sessionManager: SessionManager.inMemory(options.cwd),
        settingsManager: SettingsManager.inMemory({ compaction: { enabled: false } }),
      });
      if (!opts.piCopy) skipUnobservedContextCopy(session);
      return session;
    },
  };
}
