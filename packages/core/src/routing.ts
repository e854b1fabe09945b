import { z } from "zod";
import { digest } from "./ids.ts";

/**
 * The routing key: every inbound message belongs to exactly one (agent, user, channel)
 * conversation, and every conversation has exactly one sandbox.
 *
 * `userId` and `channelId` are platform-scoped (`U123` on Slack, a chat id on
 * Telegram, a free-form name on the REST API). In per-channel group routing the
 * gateway sets `userId` to `*` so that everybody in the channel shares one agent.
 */
export const ConversationKey = z.object({
  agentId: z.string(),
  platform: z.string(),
  /** Workspace or team on platforms that have one (Slack team id); empty otherwise. */
  workspace: z.string().optional(),
  userId: z.string(),
  channelId: z.string(),
});
export type ConversationKey = z.infer<typeof ConversationKey>;

export const SHARED_USER = "*";

export function canonicalKey(key: ConversationKey): string {
  return JSON.stringify([
    key.agentId,
    key.platform,
    key.workspace ?? "",
    key.userId,
    key.channelId,
  ]);
}

/** Stable, path-safe id of the sandbox that serves a conversation. */
export function sandboxIdOf(key: ConversationKey): string {
  return `sb_${digest(canonicalKey(key), 24)}`;
}

/** Human-readable label for logs and the admin UI (never used as a path). */
export function describeKey(key: ConversationKey): string {
  const ws = key.workspace ? `${key.workspace}/` : "";
  return `${key.agentId} · ${key.platform}:${ws}${key.userId} · #${key.channelId}`;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Agent ids are used in URLs, config keys and log lines: keep them boring. */
export function isValidAgentId(id: string): boolean {
  return NAME.test(id);
}
