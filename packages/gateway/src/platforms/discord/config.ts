import { Duration } from "@lobu/core";
import { z } from "zod";
import { apiBaseUrl, parsePlatformSection, platformSetupError } from "../shared/config.ts";

/** `[platforms.discord]` in lobu.toml. The bot token and public key come from the environment only. */
export const DiscordSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Agent this bot talks to (default: the default agent). */
  agent: z.string().min(1).optional(),
  /** Shortest time between two edits of a streaming reply (Discord allows 5 edits per 5 s per channel). */
  stream_interval: Duration.default(1200),
  /** Register the `/lobu` slash command at start (global application command). */
  register_commands: z.boolean().default(true),
});

export interface DiscordSettings {
  agentId?: string;
  token: string;
  /** The application's Ed25519 public key (hex): interactions are signed with its private half. */
  publicKey: string;
  /** REST base (`https://discord.com/api`, or an emulator). */
  apiRoot: string;
  streamIntervalMs: number;
  registerCommands: boolean;
}

/** Discord settings from lobu.toml and the environment, or undefined when Discord is not set up. */
export function discordSettings(
  section: Record<string, unknown> | undefined,
  env: NodeJS.ProcessEnv,
): DiscordSettings | undefined {
  const cfg = parsePlatformSection("discord", DiscordSection, section);
  const token = env.DISCORD_BOT_TOKEN || undefined;
  if ((section === undefined && !token) || !cfg.enabled) return undefined;
  if (!token)
    throw platformSetupError(
      "discord",
      "DISCORD_BOT_TOKEN is not set",
      "Copy the bot's token (Developer Portal → your app → Bot → Reset Token), or set enabled = false in [platforms.discord].",
    );
  const publicKey = env.DISCORD_PUBLIC_KEY ?? "";
  if (!/^[0-9a-f]{64}$/i.test(publicKey))
    throw platformSetupError(
      "discord",
      publicKey
        ? "DISCORD_PUBLIC_KEY is not a 64-character hex key"
        : "DISCORD_PUBLIC_KEY is not set",
      "Copy the Public Key from Developer Portal → your app → General Information.",
    );
  const root = env.DISCORD_API_ROOT
    ? apiBaseUrl("discord", "DISCORD_API_ROOT", env.DISCORD_API_ROOT)
    : "https://discord.com/api";
  return {
    token,
    publicKey: publicKey.toLowerCase(),
    apiRoot: root.replace(/\/+$/, ""),
    streamIntervalMs: cfg.stream_interval,
    registerCommands: cfg.register_commands,
    ...(cfg.agent ? { agentId: cfg.agent } : {}),
  };
}
