import type { AuditLog } from "../audit/log.ts";

/** One MCP call in the audit log: who, which server and tool, the outcome; never its input or result. */
export function recordMcpCall(
  audit: Pick<AuditLog, "record">,
  who: { userKey: string; agentId: string },
  serverId: string,
  tool: string,
  outcome: string,
): void {
  audit.record({
    action: "mcp.call",
    actor: who.userKey,
    agentId: who.agentId,
    details: { server: serverId, tool: tool.slice(0, 128), outcome },
  });
}
