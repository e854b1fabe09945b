import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import type { CapabilityRequest } from "../shared/private-links.ts";
import { linkMessage, textMessage } from "./payloads.ts";
import type { WindowedSender } from "./sender.ts";

const HELP =
  "Send me a message and the agent answers here. Send /settings for your personal settings (API keys, connected accounts, approvals).";

/**
 * The bot's commands (`/settings`, `/help`) and its settings links. Every
 * WhatsApp chat with the business number is one person's own, so a settings
 * link (a single-use claim code) is sent as a button in it.
 */
export async function runCommand(
  deps: { ctx: Pick<AdapterContext, "settingsLink">; sender: WindowedSender },
  origin: Origin,
  command: "settings" | "help",
): Promise<void> {
  if (command === "help") {
    await deps.sender.send(textMessage(origin.userId, HELP));
    return;
  }
  const url = await deps.ctx.settingsLink(origin);
  await deps.sender.send(
    linkMessage(
      origin.userId,
      "Your personal settings for this agent (API keys, connected accounts, approvals). The link works once, for you alone.",
      "Open settings",
      url,
    ),
  );
}

/** A capability request's settings link, as a button (WhatsApp chats are always private). */
export async function sendRequestLink(
  deps: { ctx: Pick<AdapterContext, "settingsLink">; sender: WindowedSender },
  origin: Origin,
  request: CapabilityRequest,
): Promise<void> {
  const url = request.url ?? (await deps.ctx.settingsLink(origin));
  await deps.sender.send(
    linkMessage(
      origin.userId,
      `The agent asks for ${request.value}. Answer in your settings:`,
      "Open settings",
      url,
    ),
  );
}
