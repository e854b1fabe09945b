import {
  type BashSpawnContext,
  createBashToolDefinition,
  createEditToolDefinition,
  createFindToolDefinition,
  createGrepToolDefinition,
  createLsToolDefinition,
  createReadToolDefinition,
  createWriteToolDefinition,
  type ToolDefinition,
} from "@earendil-works/pi-coding-agent";

/**
 * Where an agent's tools act. The `real` workspace is the sandbox's own
 * filesystem (the process driver confines it); the virtual tier provides one
 * backed by just-bash. Either way the agent sees `cwd` as its home.
 */
export interface Workspace {
  readonly cwd: string;
  /** Where the agent sees its skills' files (one folder per skill, read-only), if anywhere. */
  readonly skillsDir?: string;
  /** Tool definitions for the enabled built-in tool names. */
  tools(names: string[], env: () => Record<string, string>): ToolDefinition[];
  dispose(): void;
}

export function realWorkspace(cwd: string, skillsDir?: string): Workspace {
  return {
    cwd,
    ...(skillsDir ? { skillsDir } : {}),
    tools(names, env) {
      const spawnHook = (c: BashSpawnContext): BashSpawnContext => ({
        ...c,
        env: { ...c.env, ...env() },
      });
      const make: Record<string, () => ToolDefinition> = {
        bash: () => createBashToolDefinition(cwd, { spawnHook }) as ToolDefinition,
        read: () => createReadToolDefinition(cwd) as ToolDefinition,
        write: () => createWriteToolDefinition(cwd) as ToolDefinition,
        edit: () => createEditToolDefinition(cwd) as ToolDefinition,
        grep: () => createGrepToolDefinition(cwd) as ToolDefinition,
        find: () => createFindToolDefinition(cwd) as ToolDefinition,
        ls: () => createLsToolDefinition(cwd) as ToolDefinition,
      };
      return names.flatMap((n) => (make[n] ? [make[n]()] : []));
    },
    dispose() {},
  };
}
