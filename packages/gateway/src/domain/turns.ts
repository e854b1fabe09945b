import { type ConversationKey, SHARED_USER } from "@lobu/core";
import type { Origin } from "./origin.ts";

/** What the queue holds for each inbound message until it is answered. */
export interface QueuedTurn {
  messageId: string;
  conversationId: string;
  key: ConversationKey;
  origin: Origin;
  text: string;
  receivedAt: number;
}

/** The routing rule: DMs are per user; group threads per user or per channel as the agent says. */
export function routeKey(
  agentId: string,
  groupRouting: "per-user" | "per-channel",
  origin: Origin,
): ConversationKey {
  const shared = !origin.isDirect && groupRouting === "per-channel";
  return {
    agentId,
    platform: origin.platform,
    workspace: origin.workspace ?? "",
    userId: shared ? SHARED_USER : origin.userId,
    channelId: origin.channelId,
  };
}
