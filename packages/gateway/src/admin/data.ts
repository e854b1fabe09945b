import { SHARED_USER } from "@lobu/core";
import type { UserRow } from "@lobu/core/views";
import type { AuditRecord } from "../audit/log.ts";
import { userKeyOf } from "../conversations/inbound.ts";
import type { GatewayServices } from "../services.ts";

/** What the admin UI lists, assembled from the records the gateway keeps anyway. */

export type { UserRow };

/** People who have conversations, with their token use (all time). */
export async function listUsers(s: GatewayServices): Promise<UserRow[]> {
  const rows = new Map<string, UserRow>();
  for (const agent of await s.agents.list()) {
    for (const conv of await s.conversations.listConversations(agent.id, { limit: 100_000 })) {
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
        inputTokens: 0,
        outputTokens: 0,
        requests: 0,
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
    if (!row) continue;
    row.inputTokens += u.inputTokens;
    row.outputTokens += u.outputTokens;
    row.requests += u.requests;
  }
  return [...rows.values()].sort((a, b) => b.lastMessageAt - a.lastMessageAt);
}

/** Usage since a day (YYYY-MM-DD): the daily rows plus totals per user and provider. */
export async function usageSummary(s: GatewayServices, since?: string) {
  const day = since && /^\d{4}-\d{2}-\d{2}$/.test(since) ? since : undefined;
  const rows = await s.audit.usageTotals(day);
  const byUser = new Map<
    string,
    {
      userKey: string;
      provider: string;
      inputTokens: number;
      outputTokens: number;
      requests: number;
    }
  >();
  for (const r of rows) {
    const id = `${r.userKey}|${r.provider}`;
    const t = byUser.get(id) ?? {
      userKey: r.userKey,
      provider: r.provider,
      inputTokens: 0,
      outputTokens: 0,
      requests: 0,
    };
    t.inputTokens += r.inputTokens;
    t.outputTokens += r.outputTokens;
    t.requests += r.requests;
    byUser.set(id, t);
  }
  return {
    since: day ?? null,
    totals: [...byUser.values()].sort(
      (a, b) => b.inputTokens + b.outputTokens - (a.inputTokens + a.outputTokens),
    ),
    daily: rows,
  };
}

/** Recent audit records matching every filter given (action prefix, actor and agent substrings). */
export async function auditQuery(
  s: GatewayServices,
  q: { action?: string; actor?: string; agentId?: string; limit: number },
): Promise<(AuditRecord & { id: string })[]> {
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
