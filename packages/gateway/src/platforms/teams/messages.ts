import type { Logger } from "pino";
import type { InboundFile } from "../../domain/files.ts";
import type { Origin } from "../../domain/origin.ts";
import type { Background } from "../shared/background.ts";
import { inboundMessage, type SubmitInboundDeps, submitInbound } from "../shared/inbound.ts";
import { type PrivateDeps, runCommand } from "./commands.ts";
import type { ConversationRef } from "./conversations.ts";
import { commandOf } from "./webhook/parse.ts";

export interface TeamsMessagesDeps extends PrivateDeps {
  agentId: string | undefined;
  inbound: SubmitInboundDeps;
  background: Background;
  log: Logger;
}

/**
 * A message for the bot (every 1:1 message; in channels and group chats
 * Teams sends only those that @mention it): a command, or a message for the
 * agent, stored before Teams gets its answer.
 */
export async function handleMessage(
  deps: TeamsMessagesDeps,
  item: { origin: Origin; ref: ConversationRef; text: string; files: InboundFile[] },
): Promise<void> {
  const command = commandOf(item.text);
  if (command) {
    deps.background.run(
      () => runCommand(deps, item.origin, item.ref, command),
      "could not answer a Teams command",
    );
    return;
  }
  const message = inboundMessage({
    origin: item.origin,
    text: item.text,
    files: item.files,
    eventId: `teams:${item.origin.channelId}:${item.origin.messageRef}`,
    agentId: deps.agentId,
  });
  if (message) await submitInbound(deps.inbound, message);
}
