import { Duration } from "@lobu/core";
import { z } from "zod";
import { apiBaseUrl, parsePlatformSection, platformSetupError } from "../shared/config.ts";
import { SECRET_TOKEN_PATTERN } from "./webhook/verify.ts";

/** A named bot's id: its webhook path (/telegram/<id>/webhook) and the workspace of its user keys. */
export const BOT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const ENV_NAME = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be the name of an environment variable");

/**
 * `[platforms.telegram.bots.<id>]`: one more bot in this gateway, answering as
 * its own agent. Its token (and webhook secret) are read from the environment
 * variables named here, never written in lobu.toml.
 */
const TelegramBotSection = z.strictObject({
  /** The agent this bot is. */
  agent: z.string().min(1),
  /** Environment variable holding the bot's token (@BotFather). */
  bot_token_env: ENV_NAME,
  /** Environment variable holding its webhook secret token (default: generated and stored). */
  webhook_secret_env: ENV_NAME.optional(),
  /** Full webhook URL (default: <public_url>/telegram/<id>/webhook). */
  webhook_url: z.url().optional(),
});

/** `[platforms.telegram]` in lobu.toml. The bot token comes from the environment only. */
export const TelegramSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Agent this bot talks to (default: the default agent). */
  agent: z.string().min(1).optional(),
  /** `webhook` (Telegram posts to /telegram/webhook) or `polling` (getUpdates; no public URL needed). */
  mode: z.enum(["webhook", "polling"]).optional(),
  /** Full webhook URL (default: <public_url>/telegram/webhook). */
  webhook_url: z.url().optional(),
  /** Shortest time between two edits of a streaming reply in private chats. */
  stream_interval: Duration.default(1000),
  /** The same in groups (Telegram allows about 20 messages per minute per group). */
  group_stream_interval: Duration.default(3000),
  /** Mini App initData older than this is refused. */
  init_data_max_age: Duration.default(3_600_000),
  /**
   * Group messages the bot saw, kept per chat as the history its agents read
   * (the Bot API has none); 0 keeps none (docs/context.md).
   */
  history_messages: z.number().int().min(0).max(1000).default(200),
  /** How long a chat's logged messages are kept after its last one. */
  history_retention: Duration.default(7 * 86_400_000),
  /** More bots, one per agent, in this gateway (docs/platforms/telegram.md, "Several bots"). */
  bots: z
    .record(
      z.string().regex(BOT_ID_PATTERN, "a bot id is 1-32 of a-z, 0-9, _ and -"),
      TelegramBotSection,
    )
    .default({}),
});

/** One bot the gateway runs: the TELEGRAM_BOT_TOKEN one (id "") or a named one. */
export interface TelegramBotSettings {
  /**
   * "" for the TELEGRAM_BOT_TOKEN bot; else the `[platforms.telegram.bots.<id>]`
   * id, which is also the `workspace` of its origins, so its chats, people and
   * conversations never mix with another bot's.
   */
  id: string;
  agentId?: string;
  token: string;
  /** The variable the token came from (for errors). */
  tokenVar: string;
  /** Explicit webhook URL; otherwise the gateway's public URL once it listens. */
  webhookUrl?: string;
  /** From the environment; generated and stored when unset. */
  webhookSecret?: string;
}

export interface TelegramSettings {
  /** Every bot, the TELEGRAM_BOT_TOKEN one (when set) first. */
  bots: TelegramBotSettings[];
  apiRoot?: string;
  mode: "webhook" | "polling";
  streamIntervalMs: number;
  groupStreamIntervalMs: number;
  initDataMaxAgeSec: number;
  /** The log of group messages (chat-log.ts). */
  history: { maxMessages: number; retentionMs: number };
}

/** Telegram settings from lobu.toml and the environment, or undefined when Telegram is not set up. */
export function telegramSettings(
  section: Record<string, unknown> | undefined,
  env: NodeJS.ProcessEnv,
  opts: { publicUrlConfigured: boolean },
): TelegramSettings | undefined {
  const cfg = parsePlatformSection("telegram", TelegramSection, section);
  const token = env.TELEGRAM_BOT_TOKEN || undefined;
  const named = Object.entries(cfg.bots);
  if ((section === undefined && !token) || !cfg.enabled) return undefined;
  if (!token && named.length === 0) {
    throw platformSetupError(
      "telegram",
      "TELEGRAM_BOT_TOKEN is not set",
      "Create a bot with @BotFather and set its token, or set enabled = false in [platforms.telegram].",
    );
  }
  const bots: TelegramBotSettings[] = [];
  if (token) {
    const secret = webhookSecretFrom(env, "TELEGRAM_WEBHOOK_SECRET");
    bots.push({
      id: "",
      token: botToken(token, "TELEGRAM_BOT_TOKEN"),
      tokenVar: "TELEGRAM_BOT_TOKEN",
      ...(cfg.agent ? { agentId: cfg.agent } : {}),
      ...(cfg.webhook_url ? { webhookUrl: cfg.webhook_url } : {}),
      ...(secret ? { webhookSecret: secret } : {}),
    });
  }
  for (const [id, bot] of named) {
    const value = env[bot.bot_token_env] || undefined;
    if (!value) {
      throw platformSetupError(
        "telegram",
        `${bot.bot_token_env} (the token of [platforms.telegram.bots.${id}]) is not set`,
        "Set it to the token @BotFather gave that bot, or remove the bot from lobu.toml.",
      );
    }
    const secret = bot.webhook_secret_env
      ? webhookSecretFrom(env, bot.webhook_secret_env)
      : undefined;
    bots.push({
      id,
      agentId: bot.agent,
      token: botToken(value, bot.bot_token_env),
      tokenVar: bot.bot_token_env,
      ...(bot.webhook_url ? { webhookUrl: bot.webhook_url } : {}),
      ...(secret ? { webhookSecret: secret } : {}),
    });
  }
  refuseSharedCredentials(bots);
  const mode =
    cfg.mode ??
    (cfg.webhook_url || named.some(([, b]) => b.webhook_url) || opts.publicUrlConfigured
      ? "webhook"
      : "polling");
  return {
    bots,
    mode,
    streamIntervalMs: cfg.stream_interval,
    groupStreamIntervalMs: cfg.group_stream_interval,
    initDataMaxAgeSec: Math.max(1, Math.round(cfg.init_data_max_age / 1000)),
    history: { maxMessages: cfg.history_messages, retentionMs: cfg.history_retention },
    ...(env.TELEGRAM_API_ROOT
      ? {
          apiRoot: apiBaseUrl("telegram", "TELEGRAM_API_ROOT", env.TELEGRAM_API_ROOT).replace(
            /\/+$/,
            "",
          ),
        }
      : {}),
  };
}

function botToken(token: string, variable: string): string {
  if (!/^\d+:[A-Za-z0-9_-]+$/.test(token)) {
    throw platformSetupError(
      "telegram",
      `${variable} does not look like a bot token`,
      'BotFather tokens look like "123456789:AAH…".',
    );
  }
  return token;
}

function webhookSecretFrom(env: NodeJS.ProcessEnv, variable: string): string | undefined {
  const secret = env[variable] || undefined;
  if (secret && !SECRET_TOKEN_PATTERN.test(secret)) {
    throw platformSetupError(
      "telegram",
      `${variable} has characters Telegram does not allow`,
      "Use 1-256 characters from A-Z, a-z, 0-9, _ and -.",
    );
  }
  return secret;
}

/**
 * Two bots with one token would be one bot answering twice; two with one
 * webhook secret could take each other's updates. Both are refused.
 */
function refuseSharedCredentials(bots: TelegramBotSettings[]): void {
  const name = (b: TelegramBotSettings) =>
    b.id ? `[platforms.telegram.bots.${b.id}]` : "TELEGRAM_BOT_TOKEN";
  for (const [i, a] of bots.entries()) {
    for (const b of bots.slice(i + 1)) {
      if (a.token.split(":")[0] === b.token.split(":")[0])
        throw platformSetupError(
          "telegram",
          `${name(a)} and ${name(b)} are the same bot`,
          "Give each bot its own token from @BotFather.",
        );
      if (a.webhookSecret && a.webhookSecret === b.webhookSecret)
        throw platformSetupError(
          "telegram",
          `${name(a)} and ${name(b)} share a webhook secret`,
          "Give each bot its own webhook secret (or leave it unset to have one generated per bot).",
        );
    }
  }
}
