import { SHARED_USER } from "@lobu/core";
import type { AuditRow, UsageCounts, UserRow } from "@lobu/core/views";
import type { AgentRegistry } from "../agents/registry.ts";
import type { AuditLog } from "../audit/log.ts";
import type { Conversations } from "../conversations/records.ts";
import { userKeyOf } from "../domain/origin.ts";

/** What the admin UI lists, assembled from the records the gateway keeps anyway. */

export { usageSummary } from "../usage/report.ts";
export type { UserRow };

const noUsage = (): UsageCounts => ({ inputTokens: 0, outputTokens: 0, requests: 0 });

function addUsage(to: UsageCounts, from: UsageCounts): void {
  to.inputTokens += from.inputTokens;
  to.outputTokens += from.outputTokens;
  to.requests += from.requests;
}

/** People who have conversations, with their token use (all time). */
export async function listUsers(s: {
  agents: Pick<AgentRegistry, "list">;
  conversations: Pick<Conversations, "listConversations">;
  audit: Pick<AuditLog, "usageTotals">;
}): Promise<UserRow[]> {
  const rows = new Map<string, UserRow>();
  for (const agent of await s.agents.list()) {
    for (const conv of await s.conversations.listConversations(agent.id, { limit: Infinity })) {
      // Shared channel conversations belong to the channel; credit the last speaker.
      const userKey =
        conv.key.userId === SHARED_USER
          ? userKeyOf(conv.origin)
          : `${conv.key.platform}:${conv.key.workspace}:${conv.key.userId}`;
      const row = rows.get(userKey) ?? {
        userKey,
        platform: conv.key.platform,
        agents: [],
        conversations: 0,
        lastMessageAt: 0,
        ...noUsage(),
      };
      if (!row.name && conv.origin.userName && userKeyOf(conv.origin) === userKey)
        row.name = conv.origin.userName;
      if (!row.agents.includes(agent.id)) row.agents.push(agent.id);
      row.conversations++;
      row.lastMessageAt = Math.max(row.lastMessageAt, conv.lastMessageAt);
      rows.set(userKey, row);
    }
  }
  for (const u of await s.audit.usageTotals()) {
    const row = rows.get(u.userKey);
    if (row) addUsage(row, u);
  }
  return [...rows.values()].sort((a, b) => b.lastMessageAt - a.lastMessageAt);
}

/** Recent audit records matching every filter given (action prefix, actor substring, agent id). */
export async function auditQuery(
  s: { audit: Pick<AuditLog, "recent"> },
  q: { action?: string; actor?: string; agentId?: string; limit: number },
): Promise<AuditRow[]> {
  const limit = Math.min(Math.max(q.limit, 1), 1000);
  const actor = q.actor?.trim().toLowerCase();
  const agent = q.agentId?.trim();
  // Filters other than the action are applied to a bounded window of recent records.
  const window = await s.audit.recent({
    limit: actor || agent ? 5000 : limit,
    ...(q.action?.trim() ? { action: q.action.trim() } : {}),
  });
  return window
    .filter((r) => !actor || r.actor.toLowerCase().includes(actor))
    .filter((r) => !agent || r.agentId === agent)
    .slice(0, limit);
}
