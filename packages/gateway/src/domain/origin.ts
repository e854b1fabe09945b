import { z } from "zod";

/** Where replies to a message go, and who it came from. Serializable (stored with the message). */
export const Origin = z.object({
  platform: z.string(),
  /** Slack team id; empty on platforms without workspaces. */
  workspace: z.string().optional(),
  channelId: z.string(),
  /** Thread the conversation lives in (Slack thread_ts, Telegram forum topic id). */
  threadId: z.string().optional(),
  userId: z.string(),
  userName: z.string().optional(),
  isDirect: z.boolean(),
  /** Platform message id of the user's message (for reactions/replies). */
  messageRef: z.string().optional(),
});
export type Origin = z.infer<typeof Origin>;

/** The `platform` of messages sent through the REST API. */
export const API_PLATFORM = "api";

/** The key people's settings and secrets hang off: `platform:workspace:user`. */
export function userKeyOf(origin: Pick<Origin, "platform" | "workspace" | "userId">): string {
  return `${origin.platform}:${origin.workspace ?? ""}:${origin.userId}`;
}
