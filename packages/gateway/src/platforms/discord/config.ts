import { Duration } from "@lobu/core";
import { z } from "zod";
import { apiBaseUrl, parsePlatformSection, platformSetupError } from "../shared/config.ts";

/** A named bot's id: its interactions path (/discord/<id>/interactions) and the workspace of its user keys. */
const BOT_ID = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "a bot id is 1-32 of a-z, 0-9, _ and -");
const ENV_NAME = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be the name of an environment variable");

/**
 * `[platforms.discord.bots.<id>]`: one more bot (its own Discord application)
 * in this gateway, answering as its own agent. Its token and public key are
 * read from the environment variables named here.
 */
const DiscordBotSection = z.strictObject({
  /** The agent this bot is. */
  agent: z.string().min(1),
  /** Environment variable holding the bot's token. */
  bot_token_env: ENV_NAME,
  /** Environment variable holding its application's public key (hex). */
  public_key_env: ENV_NAME,
});

/** `[platforms.discord]` in lobu.toml. The bot token and public key come from the environment only. */
export const DiscordSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Agent this bot talks to (default: the default agent). */
  agent: z.string().min(1).optional(),
  /** Shortest time between two edits of a streaming reply (Discord allows 5 edits per 5 s per channel). */
  stream_interval: Duration.default(1200),
  /** Register the `/lobu` slash command at start (global application command). */
  register_commands: z.boolean().default(true),
  /** More bots, one per agent, in this gateway (docs/platforms/discord.md, "Several bots"). */
  bots: z.record(BOT_ID, DiscordBotSection).default({}),
});

/** One bot the gateway runs: the DISCORD_BOT_TOKEN one (id "") or a named one. */
export interface DiscordBotSettings {
  /**
   * "" for the DISCORD_BOT_TOKEN bot; else the `[platforms.discord.bots.<id>]`
   * id, also the `workspace` of its origins (its people and conversations are its own).
   */
  id: string;
  agentId?: string;
  token: string;
  /** The variables its token and key came from (for errors). */
  tokenVar: string;
  /** The application's Ed25519 public key (hex): interactions are signed with its private half. */
  publicKey: string;
}

export interface DiscordSettings {
  /** Every bot, the DISCORD_BOT_TOKEN one (when set) first. */
  bots: DiscordBotSettings[];
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
  const named = Object.entries(cfg.bots);
  if ((section === undefined && !token) || !cfg.enabled) return undefined;
  if (!token && named.length === 0)
    throw platformSetupError(
      "discord",
      "DISCORD_BOT_TOKEN is not set",
      "Copy the bot's token (Developer Portal → your app → Bot → Reset Token), or set enabled = false in [platforms.discord].",
    );
  const bots: DiscordBotSettings[] = [];
  if (token)
    bots.push({
      id: "",
      token,
      tokenVar: "DISCORD_BOT_TOKEN",
      publicKey: publicKeyFrom(env, "DISCORD_PUBLIC_KEY"),
      ...(cfg.agent ? { agentId: cfg.agent } : {}),
    });
  for (const [id, bot] of named) {
    const value = env[bot.bot_token_env] || undefined;
    if (!value)
      throw platformSetupError(
        "discord",
        `${bot.bot_token_env} (the token of [platforms.discord.bots.${id}]) is not set`,
        "Set it to that bot's token, or remove the bot from lobu.toml.",
      );
    bots.push({
      id,
      agentId: bot.agent,
      token: value,
      tokenVar: bot.bot_token_env,
      publicKey: publicKeyFrom(env, bot.public_key_env),
    });
  }
  // One token twice would be one bot answering twice; one key twice, one app's interactions accepted as another's.
  for (const [i, a] of bots.entries())
    for (const b of bots.slice(i + 1))
      if (a.token === b.token || a.publicKey === b.publicKey)
        throw platformSetupError(
          "discord",
          `${a.tokenVar} and ${b.tokenVar} are the same application`,
          "Each bot is its own application (Developer Portal → New Application), with its own token and public key.",
        );
  const root = env.DISCORD_API_ROOT
    ? apiBaseUrl("discord", "DISCORD_API_ROOT", env.DISCORD_API_ROOT)
    : "https://discord.com/api";
  return {
    bots,
    apiRoot: root.replace(/\/+$/, ""),
    streamIntervalMs: cfg.stream_interval,
    registerCommands: cfg.register_commands,
  };
}

function publicKeyFrom(env: NodeJS.ProcessEnv, variable: string): string {
  const publicKey = env[variable] ?? "";
  if (!/^[0-9a-f]{64}$/i.test(publicKey))
    throw platformSetupError(
      "discord",
      publicKey ? `${variable} is not a 64-character hex key` : `${variable} is not set`,
      "Copy the Public Key from Developer Portal → your app → General Information.",
    );
  return publicKey.toLowerCase();
}
