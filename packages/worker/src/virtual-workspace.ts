import type { ToolDefinition } from "@earendil-works/pi-coding-agent";
import {
  type CommandRunner,
  createVirtualWorkspace,
  type ShellPool,
  SKILLS_DIR,
  type ToolCallInfo,
  VIRTUAL_TOOL_NAMES,
  type VirtualLimits,
  type VirtualToolName,
  WORKSPACE_DIR,
} from "./virtual/index.ts";
import type { Workspace } from "./workspace.ts";

export interface VirtualWorkspaceAdapterOptions {
  /** Host directory of the sandbox's volume (shown to the agent as /workspace). */
  volumeDir: string;
  /** The sandbox's only route to the network (see pool-egress.ts). */
  fetch?: typeof fetch;
  limits?: Partial<VirtualLimits>;
  shellPool?: ShellPool;
  /** The pool's call journal hook (see virtual/call-journal.ts). */
  onCall?: (call: ToolCallInfo) => () => void;
  /** Host directory of the sandbox's skill files (shown to the agent read-only at /skills). */
  skillsDir?: string;
  /** Where bash commands run instead of the virtual shell (the pooled process tier). */
  runCommand?: CommandRunner;
}

const isVirtualTool = (name: string): name is VirtualToolName =>
  (VIRTUAL_TOOL_NAMES as readonly string[]).includes(name);

/**
 * The pool's workspace for one sandbox: pi's tools over the just-bash virtual
 * shell and filesystem, persisted in the sandbox's volume. Placeholders change
 * from turn to turn, so the shell environment is refreshed before every call.
 */
export function virtualWorkspace(opts: VirtualWorkspaceAdapterOptions): Workspace {
  const ws = createVirtualWorkspace({
    volumeDir: opts.volumeDir,
    network: { fetch: opts.fetch },
    limits: opts.limits,
    shellPool: opts.shellPool,
    onCall: opts.onCall,
    ...(opts.skillsDir ? { skillsDir: opts.skillsDir } : {}),
    ...(opts.runCommand ? { runCommand: opts.runCommand } : {}),
  });
  return {
    cwd: WORKSPACE_DIR,
    ...(opts.skillsDir ? { skillsDir: SKILLS_DIR } : {}),
    tools(names, env) {
      return ws.tools(WORKSPACE_DIR, names.filter(isVirtualTool)).map(
        (tool) =>
          ({
            ...tool,
            execute: (...args: Parameters<typeof tool.execute>) => {
              ws.setEnv(env());
              return tool.execute(...args);
            },
          }) as ToolDefinition,
      );
    },
    dispose() {
      void ws.dispose();
    },
  };
}
