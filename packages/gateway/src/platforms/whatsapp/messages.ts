import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import type { Background } from "../shared/background.ts";
import { inboundMessage, type SubmitInboundDeps, submitInbound } from "../shared/inbound.ts";
import { runCommand } from "./commands.ts";
import type { WindowedSender } from "./sender.ts";
import { commandOf, type WaInbound } from "./webhook/parse.ts";

export interface WhatsAppMessagesDeps {
  phoneNumberId: string;
  agentId: string | undefined;
  ctx: Pick<AdapterContext, "settingsLink">;
  /** How a message is stored (its ack policy, how a refusal is explained). */
  inbound: SubmitInboundDeps;
  background: Background;
  log: Logger;
  sender(to: string): WindowedSender;
}

/** Where a person's message came from: their own chat with the business number. */
export function originOf(
  item: Pick<WaInbound, "from" | "name" | "message">,
  phoneNumberId: string,
): Origin {
  return {
    platform: "whatsapp",
    workspace: phoneNumberId,
    channelId: item.from,
    userId: item.from,
    ...(item.name ? { userName: item.name } : {}),
    isDirect: true,
    messageRef: item.message.id,
  };
}

/** A person's message: one of the bot's commands, or a message for the agent. */
export async function handleMessage(
  deps: WhatsAppMessagesDeps,
  item: Extract<WaInbound, { kind: "message" }>,
): Promise<void> {
  const origin = originOf(item, deps.phoneNumberId);
  const command = item.files.length === 0 ? commandOf(item.text) : undefined;
  if (command) {
    deps.background.run(
      () => runCommand({ ctx: deps.ctx, sender: deps.sender(item.from) }, origin, command),
      `could not answer the WhatsApp command /${command}`,
    );
    return;
  }
  const message = inboundMessage({
    origin,
    text: item.text,
    files: item.files,
    // Meta delivers a message again (same wamid) until it gets a 200.
    eventId: `${deps.phoneNumberId}:${item.message.id}`,
    agentId: deps.agentId,
  });
  if (message) await submitInbound(deps.inbound, message);
}
