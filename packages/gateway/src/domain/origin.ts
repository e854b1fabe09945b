/** Where replies to a message go, and who it came from. Serializable (stored with the message). */
export interface Origin {
  platform: string;
  /** Slack team id; empty on platforms without workspaces. */
  workspace?: string;
  channelId: string;
  /** Thread the conversation lives in (Slack thread_ts, Telegram forum topic id). */
  threadId?: string;
  userId: string;
  userName?: string;
  isDirect: boolean;
  /** Platform message id of the user's message (for reactions/replies). */
  messageRef?: string;
}

/** The key people's settings and secrets hang off: `platform:workspace:user`. */
export function userKeyOf(origin: Pick<Origin, "platform" | "workspace" | "userId">): string {
  return `${origin.platform}:${origin.workspace ?? ""}:${origin.userId}`;
}
