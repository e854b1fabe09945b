import { Client, GatewayDispatchEvents, GatewayIntentBits } from "@discordjs/core";
import { REST } from "@discordjs/rest";
import { WebSocketManager } from "@discordjs/ws";
import { bestEffort } from "@lobu/core/best-effort";
import type { Logger } from "pino";
import type { AckPolicy } from "../shared/ack.ts";
import type { DiscordBotSettings, DiscordSettings } from "./config.ts";

/**
 * Messages come over the Gateway (a WebSocket the adapter opens with
 * @discordjs/ws). Nothing delivers an event again except a resumed session
 * replaying what it missed, so storing is tried a few times first.
 */
export const DISCORD_GATEWAY_ACK: AckPolicy = {
  transport: "Discord Gateway",
  redelivers: false,
  storeAttempts: 4,
};

const CONNECT_TIMEOUT_MS = 30_000;

export const INTENTS =
  GatewayIntentBits.Guilds |
  GatewayIntentBits.GuildMessages |
  GatewayIntentBits.DirectMessages |
  GatewayIntentBits.MessageContent;

export interface DiscordConnection {
  client: Client;
  gateway: WebSocketManager;
  botId: string;
  applicationId: string;
}

/** The REST client: rate limits are rejected (RetryLater), not queued (client.ts). */
export function restClient(settings: { apiRoot: string; token: string }): REST {
  return new REST({ api: settings.apiRoot, version: "10", rejectOnRateLimit: () => true }).setToken(
    settings.token,
  );
}

/**
 * Connect to the Gateway and wait for READY (who the bot is). A bad token or
 * an unreachable Discord stops the start with what to fix.
 */
export async function connectGateway(
  settings: Pick<DiscordSettings, "apiRoot"> &
    Pick<DiscordBotSettings, "token"> &
    Partial<Pick<DiscordBotSettings, "tokenVar">>,
  rest: REST,
  log: Logger,
  onMessage: (data: unknown) => void,
): Promise<DiscordConnection> {
  const gateway = new WebSocketManager({ token: settings.token, intents: INTENTS, rest });
  const client = new Client({ rest, gateway });
  const ready = new Promise<{ botId: string; applicationId: string }>((resolve) =>
    client.once(GatewayDispatchEvents.Ready, ({ data }) =>
      resolve({ botId: data.user.id, applicationId: data.application.id }),
    ),
  );
  client.on(GatewayDispatchEvents.MessageCreate, ({ data }) => onMessage(data));
  gateway.on("error", (err) => log.warn({ err }, "Discord Gateway error"));
  let timer: NodeJS.Timeout | undefined;
  try {
    const who = await Promise.race([
      gateway.connect().then(() => ready),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no READY within 30 s")), CONNECT_TIMEOUT_MS);
      }),
    ]);
    return { client, gateway, ...who };
  } catch (err) {
    // The connect's own error is what the caller gets.
    await Promise.resolve(gateway.destroy()).catch(
      bestEffort(log, "Discord Gateway connection of a failed connect not closed"),
    );
    const message = (err as Error).message;
    throw new Error(
      /401|Unauthorized|Authentication/i.test(message)
        ? `Discord rejected ${settings.tokenVar ?? "DISCORD_BOT_TOKEN"} (${message}); copy the token from the Developer Portal (Bot → Reset Token)`
        : `could not connect to the Discord Gateway at ${settings.apiRoot} (${message}); check the network${settings.apiRoot === "https://discord.com/api" ? "" : " and DISCORD_API_ROOT"}`,
    );
  } finally {
    clearTimeout(timer);
  }
}
