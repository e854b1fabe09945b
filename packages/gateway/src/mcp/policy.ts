import type { McpSection, ToolPolicy } from "@lobu/core";

/**
 * A server's own policy for one of its tools ([mcp.<id>] tools, then policy):
 * an exact name wins over patterns, and of patterns the longest (the most
 * specific) wins; equally long ones take the stricter.
 */
export function serverToolPolicy(server: McpSection, tool: string): ToolPolicy {
  const exact = server.tools[tool];
  if (exact) return exact;
  let best: { length: number; policy: ToolPolicy } | undefined;
  for (const [pattern, policy] of Object.entries(server.tools)) {
    if (!pattern.includes("*") || !globMatches(pattern, tool)) continue;
    const length = pattern.replaceAll("*", "").length;
    if (
      !best ||
      length > best.length ||
      (length === best.length && STRICT[policy] > STRICT[best.policy])
    )
      best = { length, policy };
  }
  return best?.policy ?? server.policy;
}

const STRICT: Record<ToolPolicy, number> = { allow: 0, ask: 1, deny: 2 };

function globMatches(pattern: string, name: string): boolean {
  const re = pattern
    .split("*")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${re}$`).test(name);
}
