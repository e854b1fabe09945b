import { createExtensionRuntime, type ResourceLoader } from "@earendil-works/pi-coding-agent";

/**
 * A ResourceLoader that reads nothing from disk: pi's default one scans the cwd
 * and agent directory for AGENTS.md, skills, extensions and themes, which in a
 * sandbox are the agent's own files (or, on the virtual tier, the pool's) and
 * cost a scan per session. The system prompt comes from the gateway instead.
 */
export function staticResourceLoader(options: { systemPrompt?: string } = {}): ResourceLoader {
  const extensions = { extensions: [], errors: [], runtime: createExtensionRuntime() };
  return {
    getExtensions: () => extensions,
    getSkills: () => ({ skills: [], diagnostics: [] }),
    getPrompts: () => ({ prompts: [], diagnostics: [] }),
    getThemes: () => ({ themes: [], diagnostics: [] }),
    getAgentsFiles: () => ({ agentsFiles: [] }),
    getSystemPrompt: () => options.systemPrompt,
    getSystemPromptSource: () => undefined,
    getAppendSystemPrompt: () => [],
    getAppendSystemPromptSources: () => [],
    extendResources: () => undefined,
    reload: async () => undefined,
  };
}
