import { createHash } from "node:crypto";

/**
 * The name an MCP tool has for the model: `mcp__<server>__<tool>`, in the
 * charset gateway tools allow (lower case, digits, `_`; at most 64). Anything
 * else becomes `_`; a name that would be too long (or that folding made
 * ambiguous) keeps a short hash of the original so two tools never share one.
 * A server id with `__` or a trailing `_` would make the split ambiguous
 * (server `a` tool `b__c` against server `a__b` tool `c`), so its names are
 * hashed too: a server's tool names cannot land on another server's.
 */
const MAX = 64;

export function mcpToolName(serverId: string, tool: string): string {
  const fold = (s: string) => s.toLowerCase().replace(/[^a-z0-9_]/g, "_");
  const name = `mcp__${fold(serverId)}__${fold(tool)}`;
  const exact =
    `mcp__${serverId}__${tool}` === name && !serverId.includes("__") && !serverId.endsWith("_");
  if (exact && name.length <= MAX) return name;
  const hash = createHash("sha256").update(`${serverId}\0${tool}`).digest("hex").slice(0, 8);
  return `${name.slice(0, MAX - hash.length - 1)}_${hash}`;
}

/** The tool that connects a person's account when no tool of the server is known yet. */
export function connectToolName(serverId: string): string {
  return mcpToolName(serverId, "connect");
}
