import { bestEffort } from "@lobu/core/best-effort";
import { SocketModeClient } from "@slack/socket-mode";
import type { Logger } from "pino";
import { type AckPolicy, withinDeadline } from "../shared/ack.ts";
import { slackLogger } from "./client.ts";
import type {
  BlockActionsPayload,
  EventEnvelope,
  SlackHandlers,
  SlashCommand,
} from "./webhook/parse.ts";

/**
 * Socket Mode envelopes are acknowledged over the socket; one not
 * acknowledged within three seconds is delivered again.
 */
export const SLACK_SOCKET_ACK: AckPolicy = {
  transport: "Slack Socket Mode",
  deadlineMs: 3_000,
  redelivers: true,
  storeAttempts: 1,
};

interface SocketEnvelope {
  ack: (response?: unknown) => Promise<void>;
  type: string;
  body: unknown;
}

/**
 * Socket Mode (SLACK_APP_TOKEN): the same deliveries as the Request URL,
 * over a WebSocket the gateway opens, so no public URL is needed. An envelope
 * is acknowledged once handled; one that fails is not, and Slack delivers it
 * again.
 */
export async function startSocketReceiver(opts: {
  appToken: string;
  apiUrl: string;
  log: Logger;
  handlers: SlackHandlers;
}): Promise<SocketModeClient> {
  const { log, handlers } = opts;
  const socket = new SocketModeClient({
    appToken: opts.appToken,
    logger: slackLogger(log),
    clientOptions: { slackApiUrl: opts.apiUrl },
  });
  socket.on("slack_event", async ({ ack, type, body }: SocketEnvelope) => {
    try {
      const reply = await withinDeadline(SLACK_SOCKET_ACK, log, async () => {
        if (type === "events_api") await handlers.event(body as EventEnvelope);
        else if (type === "interactive") await handlers.interaction(body as BlockActionsPayload);
        else if (type === "slash_commands") return handlers.command(body as SlashCommand);
        return undefined;
      });
      await (reply ? ack(reply) : ack());
    } catch (err) {
      // Not acknowledged: Slack delivers the envelope again.
      log.error({ err, type }, "could not handle a Socket Mode envelope");
    }
  });
  try {
    await socket.start();
  } catch (err) {
    await socket
      .disconnect()
      .catch(
        bestEffort(
          log,
          "Socket Mode client not disconnected after a failed start",
          {},
          { level: "debug" },
        ),
      );
    const code = (err as { data?: { error?: string } }).data?.error ?? (err as Error).message;
    throw new Error(
      `Slack Socket Mode could not connect (${code}); check SLACK_APP_TOKEN (xapp-…, scope connections:write) and that Socket Mode is enabled for the app`,
    );
  }
  log.info("Slack Socket Mode connected");
  return socket;
}
