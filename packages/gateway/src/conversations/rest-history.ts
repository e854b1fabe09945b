import type { ConversationHistory, HistoryMessage } from "../domain/history.ts";
import type { Conversations } from "./records.ts";

/**
 * The REST API's history: a REST conversation is one person's (agent, user,
 * channel), so every earlier message of it was a turn of the agent's own
 * session and is in its transcript already; `recent` adds nothing. The
 * `channel_history` tool pages through the conversation's stored history
 * (its messages and the agent's answers), oldest first: the same for both
 * scopes, since a REST conversation has no threads.
 */
export function restHistory(conversations: Pick<Conversations, "history">): ConversationHistory {
  return {
    recent: async () => ({ messages: [], earlier: false }),
    page: async (place, req) => {
      const entries = await conversations.history(place.conversationId, {
        ...(req.cursor !== undefined ? { after: req.cursor } : {}),
        limit: req.limit + 1,
      });
      const page = entries.slice(0, req.limit);
      const messages: HistoryMessage[] = page
        .filter((e) => e.role !== "error")
        .map((e) => ({
          id: e.messageId,
          author: e.role === "assistant" ? "assistant" : (e.user ?? place.origin.userId),
          at: e.at,
          text: e.text,
          ...(e.role === "assistant" ? { fromAssistant: true } : {}),
        }));
      const last = page.at(-1);
      return entries.length > req.limit && last ? { messages, next: last.cursor } : { messages };
    },
  };
}
