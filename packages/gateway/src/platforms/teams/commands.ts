import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import type { CapabilityRequest } from "../shared/private-links.ts";
import { attachmentOf, linkCard } from "./cards.ts";
import { type ActivityOut, type ConnectorClient, teamsCall } from "./client.ts";
import type { ConversationRef } from "./conversations.ts";

const HELP =
  "Message me and the agent answers here (in a channel, @mention me). Send **settings** for your personal settings (API keys, connected accounts, approvals); the link comes in our 1:1 chat.";

export interface PrivateDeps {
  ctx: Pick<AdapterContext, "settingsLink">;
  client: ConnectorClient;
}

/** The person's 1:1 chat with the bot: this one, or one created (or found) by the connector. */
export function privateConversation(
  deps: Pick<PrivateDeps, "client">,
  origin: Origin,
  ref: ConversationRef,
): Promise<string> {
  if (origin.isDirect) return Promise.resolve(origin.channelId);
  return teamsCall(() =>
    deps.client.personalConversation(ref.serviceUrl, ref.botId, origin.userId, ref.tenantId),
  );
}

/**
 * Send something to the person alone: in their 1:1 chat with the bot, never
 * in a channel or group chat (a settings link carries a single-use claim
 * code; a refusal is nobody else's business).
 */
export async function sendPrivately(
  deps: Pick<PrivateDeps, "client">,
  origin: Origin,
  ref: ConversationRef,
  activity: ActivityOut,
): Promise<void> {
  const conversationId = await privateConversation(deps, origin, ref);
  await teamsCall(() => deps.client.send(ref.serviceUrl, conversationId, activity));
}

const linkActivity = (text: string, url: string): ActivityOut => ({
  type: "message",
  attachments: [attachmentOf(linkCard(text, "Open settings", url))],
});

/** `settings` and `help`: the settings link goes to the 1:1 chat; help is answered where it was asked. */
export async function runCommand(
  deps: PrivateDeps,
  origin: Origin,
  ref: ConversationRef,
  command: "settings" | "help",
): Promise<void> {
  if (command === "help") {
    await teamsCall(() =>
      deps.client.send(ref.serviceUrl, origin.channelId, {
        type: "message",
        text: HELP,
        textFormat: "markdown",
      }),
    );
    return;
  }
  const url = await deps.ctx.settingsLink(origin);
  await sendPrivately(
    deps,
    origin,
    ref,
    linkActivity(
      "Your personal settings for this agent (API keys, connected accounts, approvals). The link works once, for you alone.",
      url,
    ),
  );
  if (!origin.isDirect)
    await teamsCall(() =>
      deps.client.send(ref.serviceUrl, origin.channelId, {
        type: "message",
        text: "I sent your settings link to our 1:1 chat.",
        replyToId: origin.messageRef ?? "",
      }),
    );
}

/** A capability request's settings link, in the 1:1 chat (the card in a channel carries none). */
export async function sendRequestLink(
  deps: PrivateDeps,
  origin: Origin,
  ref: ConversationRef,
  request: CapabilityRequest,
): Promise<void> {
  const url = request.url ?? (await deps.ctx.settingsLink(origin));
  await sendPrivately(
    deps,
    origin,
    ref,
    linkActivity(`The agent asks for ${request.value}. Answer in your settings:`, url),
  );
}
