import type { Logger } from "pino";
import { type AdapterContext, REDELIVERY_MEMORY_MS } from "../shared/adapter.ts";
import { inboundMessage, type SubmitInboundDeps, submitInbound } from "../shared/inbound.ts";
import { handleOnce } from "../shared/once.ts";
import { type ChatMessageEvent, filesOf, messageTextOf, originOf } from "./webhook/parse.ts";

export interface GoogleChatMessagesDeps {
  agentId: string | undefined;
  ctx: Pick<AdapterContext, "once">;
  /** How a message is stored (its ack policy, how a refusal is explained). */
  inbound: SubmitInboundDeps;
  log: Logger;
}

/**
 * A MESSAGE event (Chat sends an app every DM, and space messages that
 * mention it): stored for the agent once, however often it arrives (keyed by
 * the message's resource name).
 */
export async function handleChatMessage(
  deps: GoogleChatMessagesDeps,
  event: ChatMessageEvent,
): Promise<void> {
  const marker = { key: `message:${event.message.name}`, ttlMs: REDELIVERY_MEMORY_MS };
  await handleOnce(
    { once: deps.ctx.once, log: deps.log, marker },
    async () => {
      const message = inboundMessage({
        origin: originOf(event),
        text: messageTextOf(event),
        files: filesOf(event),
        eventId: `googlechat:${event.message.name}`,
        agentId: deps.agentId,
      });
      if (message) await submitInbound(deps.inbound, message);
    },
    () => deps.log.debug({ message: event.message.name }, "Google Chat message already handled"),
  );
}
