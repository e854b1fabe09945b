/**
 * The `virtual` sandbox tier's tool layer: pi's seven tools over a just-bash virtual shell
 * and filesystem, persisted in the session's volume directory.
 *
 *   const ws = createVirtualWorkspace({ volumeDir, env: placeholders, network: { fetch } });
 *   const { session } = await createAgentSession({
 *     ...virtualSessionOptions(ws, { systemPrompt }),   // cwd, tools, customTools, resourceLoader
 *     model, modelRuntime, sessionManager, settingsManager,
 *   });
 *   ...
 *   session.dispose(); await ws.dispose();             // files stay in volumeDir
 *
 * /workspace is volumeDir on disk, /tmp is volumeDir/.tmp; everything else is a shared
 * read-only layout. Bash commands run on a few worker threads shared by the process.
 */
export { NETWORK_DISABLED_MESSAGE, type VirtualNetworkOptions } from "./network.ts";
export {
  SKILLS_DIR,
  TMP_DIR,
  VirtualFsError,
  VirtualPathError,
  WORKSPACE_DIR,
} from "./paths.ts";
export { virtualSessionOptions } from "./session.ts";
export { ShellPool, type ShellPoolOptions, sharedShellPool } from "./shell-pool.ts";
export { type AnyToolDefinition, VIRTUAL_TOOL_NAMES, type VirtualToolName } from "./tools.ts";
export {
  type CommandRunner,
  createVirtualWorkspace,
  DEFAULT_VIRTUAL_LIMITS,
  type ToolCallInfo,
  type VirtualExecOptions,
  type VirtualExecResult,
  type VirtualLimits,
  type VirtualUsage,
  type VirtualWorkspace,
  type VirtualWorkspaceOptions,
} from "./workspace.ts";
