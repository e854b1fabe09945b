import type { CreateAgentSessionOptions } from "@earendil-works/pi-coding-agent";
import { staticResourceLoader } from "../resources.ts";
import { WORKSPACE_DIR } from "./paths.ts";
import { VIRTUAL_TOOL_NAMES, type VirtualToolName } from "./tools.ts";
import type { VirtualWorkspace } from "./workspace.ts";

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
    resourceLoader: staticResourceLoader({ systemPrompt: options.systemPrompt }),
  };
}
