import { Hono } from "hono";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { authorizeFor, inScope } from "../access/permissions.ts";
import type { AgentRegistry } from "../agents/registry.ts";
import type { Conversations } from "../conversations/records.ts";
import { cursorParam, limitParam, textParam } from "../http/query.ts";
import { notFound } from "../http/refusals.ts";

/** What the conversation routes use. */
export interface ConversationRouteDeps {
  agents: Pick<AgentRegistry, "require">;
  conversations: Pick<Conversations, "listConversations" | "getConversation" | "history">;
}

/** An agent's conversations, and the history of one. */
export function conversationRoutes(d: ConversationRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.get("/agents/:agentId/conversations", listConversations(d));
  r.get("/conversations/:conversationId/messages", conversationHistory(d));
  return r;
}

function listConversations(d: ConversationRouteDeps) {
  return endpoint(
    "conversations.read",
    { user: textParam(200), limit: limitParam(100) },
    async (c, { token, access, query }) => {
      const agentId = (await d.agents.require(c.req.param("agentId") ?? "")).id;
      const all = await d.conversations.listConversations(agentId, {
        ...(query.user !== undefined ? { userId: query.user } : {}),
        limit: Number.POSITIVE_INFINITY,
      });
      // `own`: only the conversations of the token's people, on the api platform.
      const conversations = (
        access === "all" ? all : all.filter((r) => inScope(token, r.key))
      ).slice(0, query.limit);
      return c.json({ conversations });
    },
  );
}

function conversationHistory(d: ConversationRouteDeps) {
  return endpoint(
    "conversations.read",
    { after: cursorParam(), limit: limitParam(200) },
    async (c, { token, query }) => {
      const id = c.req.param("conversationId") ?? "";
      const conversation = await d.conversations.getConversation(id);
      if (!conversation) throw notFound("no such conversation");
      authorizeFor(token, "conversations.read", conversation.key, `conversation ${id}`);
      const messages = await d.conversations.history(id, {
        ...(query.after !== undefined ? { after: query.after } : {}),
        limit: query.limit,
      });
      return c.json({ messages });
    },
  );
}
