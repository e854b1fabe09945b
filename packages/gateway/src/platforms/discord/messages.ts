import type { Logger } from "pino";
import { type AdapterContext, REDELIVERY_MEMORY_MS } from "../shared/adapter.ts";
import { inboundMessage, type SubmitInboundDeps, submitInbound } from "../shared/inbound.ts";
import { handleOnce } from "../shared/once.ts";
import { classifyMessage, filesOf, GatewayMessage, originOf } from "./webhook/parse.ts";

export interface DiscordMessagesDeps {
  botId: string;
  /** The bot's id in lobu.toml ("" for DISCORD_BOT_TOKEN's): the workspace of its origins. */
  configId: string;
  agentId: string | undefined;
  ctx: Pick<AdapterContext, "once">;
  /** How a message is stored (its ack policy, how a refusal is explained). */
  inbound: SubmitInboundDeps;
  log: Logger;
}

/**
 * A MESSAGE_CREATE from the Gateway: every DM, and server messages that
 * mention the bot or reply to it, go to the agent, each once (a resumed
 * session replays what it missed).
 */
export async function handleGatewayMessage(
  deps: DiscordMessagesDeps,
  data: unknown,
): Promise<void> {
  const parsed = GatewayMessage.safeParse(data);
  if (!parsed.success) {
    deps.log.warn({ issues: parsed.error.issues.length }, "Discord: an unreadable message");
    return;
  }
  const msg = parsed.data;
  const m = classifyMessage(msg, deps.botId);
  if (m.kind === "ignore") {
    deps.log.debug({ reason: m.reason }, "ignoring Discord message");
    return;
  }
  // Two bots in one server both get the message: each takes it once, as its own.
  const scope = deps.configId ? `${deps.configId}:` : "";
  const marker = { key: `message:${scope}${msg.id}`, ttlMs: REDELIVERY_MEMORY_MS };
  await handleOnce(
    { once: deps.ctx.once, log: deps.log, marker },
    async () => {
      const message = inboundMessage({
        origin: originOf(msg, deps.configId),
        text: m.text,
        files: filesOf(msg),
        eventId: `discord:${scope}${msg.id}`,
        agentId: deps.agentId,
      });
      if (message) await submitInbound(deps.inbound, message);
    },
    () => deps.log.debug({ messageId: msg.id }, "Discord message already handled"),
  );
}
