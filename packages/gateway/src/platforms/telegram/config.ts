import { Duration } from "@lobu/core";
import { z } from "zod";
import { apiBaseUrl, parsePlatformSection, platformSetupError } from "../shared/config.ts";
import { SECRET_TOKEN_PATTERN } from "./webhook/verify.ts";

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
});

export interface TelegramSettings {
  agentId?: string;
  token: string;
  apiRoot?: string;
  mode: "webhook" | "polling";
  /** Explicit webhook URL; otherwise the gateway's public URL once it listens. */
  webhookUrl?: string;
  /** TELEGRAM_WEBHOOK_SECRET; generated and stored when unset. */
  webhookSecret?: string;
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
  if ((section === undefined && !token) || !cfg.enabled) return undefined;
  if (!token) {
    throw platformSetupError(
      "telegram",
      "TELEGRAM_BOT_TOKEN is not set",
      "Create a bot with @BotFather and set its token, or set enabled = false in [platforms.telegram].",
    );
  }
  if (!/^\d+:[A-Za-z0-9_-]+$/.test(token)) {
    throw platformSetupError(
      "telegram",
      "TELEGRAM_BOT_TOKEN does not look like a bot token",
      'BotFather tokens look like "123456789:AAH…".',
    );
  }
  const secret = env.TELEGRAM_WEBHOOK_SECRET || undefined;
  if (secret && !SECRET_TOKEN_PATTERN.test(secret)) {
    throw platformSetupError(
      "telegram",
      "TELEGRAM_WEBHOOK_SECRET has characters Telegram does not allow",
      "Use 1-256 characters from A-Z, a-z, 0-9, _ and -.",
    );
  }
  const mode = cfg.mode ?? (cfg.webhook_url || opts.publicUrlConfigured ? "webhook" : "polling");
  return {
    token,
    mode,
    streamIntervalMs: cfg.stream_interval,
    groupStreamIntervalMs: cfg.group_stream_interval,
    initDataMaxAgeSec: Math.max(1, Math.round(cfg.init_data_max_age / 1000)),
    history: { maxMessages: cfg.history_messages, retentionMs: cfg.history_retention },
    ...(cfg.agent ? { agentId: cfg.agent } : {}),
    ...(env.TELEGRAM_API_ROOT
      ? {
          apiRoot: apiBaseUrl("telegram", "TELEGRAM_API_ROOT", env.TELEGRAM_API_ROOT).replace(
            /\/+$/,
            "",
          ),
        }
      : {}),
    ...(cfg.webhook_url ? { webhookUrl: cfg.webhook_url } : {}),
    ...(secret ? { webhookSecret: secret } : {}),
  };
}
