import {
  type CreateAgentSessionOptions,
  createExtensionRuntime,
  type ResourceLoader,
} from "@earendil-works/pi-coding-agent";
import { WORKSPACE_DIR } from "./paths.ts";
import { VIRTUAL_TOOL_NAMES, type VirtualToolName } from "./tools.ts";
import type { VirtualWorkspace } from "./workspace.ts";

/**
 * A ResourceLoader that reads nothing from the host: pi's default one scans the cwd and
 * agent directory for AGENTS.md, skills, extensions and themes, which on the virtual tier
 * would be the pool's own files (and costs a disk scan per session).
 */
export function createStaticResourceLoader(
  options: { systemPrompt?: string; appendSystemPrompt?: string[] } = {},
): ResourceLoader {
  const extensions = { extensions: [], errors: [], runtime: createExtensionRuntime() };
  return {
    getExtensions: () => extensions,
    getSkills: () => ({ skills: [], diagnostics: [] }),
    getPrompts: () => ({ prompts: [], diagnostics: [] }),
    getThemes: () => ({ themes: [], diagnostics: [] }),
    getAgentsFiles: () => ({ agentsFiles: [] }),
    getSystemPrompt: () => options.systemPrompt,
    getSystemPromptSource: () => undefined,
    getAppendSystemPrompt: () => options.appendSystemPrompt ?? [],
    getAppendSystemPromptSources: () => [],
    extendResources: () => undefined,
    reload: async () => undefined,
  };
}

/**
 * The createAgentSession options that put a session on the virtual tier: the session's cwd
 * is the virtual /workspace (so the system prompt and tool paths show it, never a host
 * path), its tools are the workspace's, and resources come from `systemPrompt` only.
 */
export function virtualSessionOptions(
  workspace: VirtualWorkspace,
  options: { tools?: readonly VirtualToolName[]; systemPrompt?: string } = {},
): Pick<CreateAgentSessionOptions, "cwd" | "tools" | "customTools" | "resourceLoader"> {
  const names = options.tools ?? VIRTUAL_TOOL_NAMES;
  return {
    cwd: WORKSPACE_DIR,
    tools: [...names],
    customTools: workspace.tools(WORKSPACE_DIR, names),
    resourceLoader: createStaticResourceLoader({ systemPrompt: options.systemPrompt }),
  };
}
