import { ConversationKey, SHARED_USER } from "@lobu/core";
import { z } from "zod";
import { InboundFile } from "./files.ts";
import { Origin } from "./origin.ts";

/** What the queue holds for each inbound message until it is answered (the queue payload). */
export const QueuedTurn = z.object({
  messageId: z.string().min(1),
  conversationId: z.string().min(1),
  key: ConversationKey,
  origin: Origin,
  text: z.string(),
  receivedAt: z.number(),
  /** Attachments, fetched into the sandbox when the turn runs. */
  files: z.array(InboundFile).optional(),
  /** The name and picture the reply carries (the agent's or its channel's persona). */
  persona: z.object({ name: z.string().optional(), iconUrl: z.string().optional() }).optional(),
  /** The W3C trace context of the span that queued it: the turn continues that trace. */
  traceparent: z.string().max(64).optional(),
  /** The schedule whose run this turn is (what it may schedule is bounded, schedule-tools.ts). */
  scheduleId: z.string().max(64).optional(),
});
export type QueuedTurn = z.infer<typeof QueuedTurn>;

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
