import { Duration } from "@lobu/core";
import { z } from "zod";
import { apiBaseUrl, parsePlatformSection, platformSetupError } from "../shared/config.ts";

/** `[platforms.slack]` in lobu.toml. Tokens and secrets come from the environment only. */
export const SlackSection = z.strictObject({
  enabled: z.boolean().default(true),
  /** Agent this Slack app talks to (default: the default agent). */
  agent: z.string().min(1).optional(),
  /** `http` (Events API Request URL) or `socket` (Socket Mode, needs SLACK_APP_TOKEN). */
  mode: z.enum(["http", "socket"]).optional(),
  /** Shortest time between two edits of a streaming reply. */
  stream_interval: Duration.default(1000),
  /** In a thread where someone mentioned the bot, their replies reach the agent without a new mention. */
  thread_followups: z.boolean().default(true),
  /** Replies longer than this (characters) are attached as a file, with a preview in the message. */
  max_inline_chars: z.number().int().min(1000).max(30_000).default(12_000),
  /**
   * Stream replies in threads with Slack's native streaming messages
   * (chat.startStream / appendStream / stopStream) instead of editing one
   * message; replies outside threads still stream by edits.
   */
  native_streaming: z.boolean().default(false),
  /** Prompts offered when someone opens the assistant pane (at most 4). */
  suggested_prompts: z
    .array(
      z.strictObject({ title: z.string().min(1).max(75), message: z.string().min(1).max(2000) }),
    )
    .max(4)
    .default([
      { title: "What can you do?", message: "What can you do for me?" },
      { title: "Summarize", message: "Summarize what we talked about so far." },
    ]),
  /** Bot scopes requested by the OAuth install (/slack/install). */
  bot_scopes: z.array(z.string().min(1)).optional(),
  /** OAuth redirect URL registered with the Slack app (default: <public_url>/slack/oauth/callback). */
  redirect_url: z.url().optional(),
});

export const DEFAULT_BOT_SCOPES = [
  "app_mentions:read",
  "channels:history",
  "groups:history",
  "im:history",
  "mpim:history",
  "chat:write",
  "assistant:write",
  "reactions:read",
  "commands",
  "files:read",
  "files:write",
  "users:read",
  // Access rules: shared (Slack Connect) channels, email domains, user groups.
  "channels:read",
  "groups:read",
  "users:read.email",
  "usergroups:read",
  // Agents answering under their own name and picture (persona).
  "chat:write.customize",
];

export interface SlackSettings {
  agentId?: string;
  mode: "http" | "socket";
  streamIntervalMs: number;
  threadFollowups: boolean;
  maxInlineChars: number;
  nativeStreaming: boolean;
  suggestedPrompts: { title: string; message: string }[];
  /** Web API base, e.g. https://slack.com/api/ (SLACK_API_URL). */
  apiUrl: string;
  /** Where browsers approve an install (derived from the API URL). */
  authorizeUrl: string;
  botToken?: string;
  signingSecret?: string;
  appToken?: string;
  oauth?: { clientId: string; clientSecret: string; scopes: string[]; redirectUrl?: string };
}

/** Slack settings from lobu.toml and the environment, or undefined when Slack is not set up. */
export function slackSettings(
  section: Record<string, unknown> | undefined,
  env: NodeJS.ProcessEnv,
): SlackSettings | undefined {
  const cfg = parsePlatformSection("slack", SlackSection, section);
  const botToken = env.SLACK_BOT_TOKEN || undefined;
  const appToken = env.SLACK_APP_TOKEN || undefined;
  const signingSecret = env.SLACK_SIGNING_SECRET || undefined;
  const clientId = env.SLACK_CLIENT_ID || undefined;
  const clientSecret = env.SLACK_CLIENT_SECRET || undefined;
  const wanted = section !== undefined || botToken || appToken || clientId;
  if (!wanted || !cfg.enabled) return undefined;

  if (clientId && !clientSecret) {
    throw platformSetupError(
      "slack",
      "SLACK_CLIENT_ID is set but SLACK_CLIENT_SECRET is not",
      "Set both for OAuth installs.",
    );
  }
  if (!botToken && !(clientId && clientSecret)) {
    throw platformSetupError(
      "slack",
      "no bot token",
      "Set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (installs via /slack/install), or set enabled = false in [platforms.slack].",
    );
  }
  const mode = cfg.mode ?? (appToken && !signingSecret ? "socket" : "http");
  if (mode === "socket" && !appToken) {
    throw platformSetupError(
      "slack",
      'mode = "socket" needs an app-level token',
      "Set SLACK_APP_TOKEN (xapp-…, scope connections:write).",
    );
  }
  if (mode === "http" && !signingSecret) {
    throw platformSetupError(
      "slack",
      "SLACK_SIGNING_SECRET is not set",
      'Set it from the app\'s Basic Information page (HTTP mode), or use Socket Mode: SLACK_APP_TOKEN and mode = "socket".',
    );
  }
  let apiUrl = env.SLACK_API_URL
    ? apiBaseUrl("slack", "SLACK_API_URL", env.SLACK_API_URL)
    : "https://slack.com/api/";
  if (!apiUrl.endsWith("/")) apiUrl += "/";
  return {
    ...(cfg.agent ? { agentId: cfg.agent } : {}),
    mode,
    streamIntervalMs: cfg.stream_interval,
    threadFollowups: cfg.thread_followups,
    maxInlineChars: cfg.max_inline_chars,
    nativeStreaming: cfg.native_streaming,
    suggestedPrompts: cfg.suggested_prompts,
    apiUrl,
    authorizeUrl: new URL("../oauth/v2/authorize", apiUrl).toString(),
    ...(botToken ? { botToken } : {}),
    ...(signingSecret ? { signingSecret } : {}),
    ...(appToken ? { appToken } : {}),
    ...(clientId && clientSecret
      ? {
          oauth: {
            clientId,
            clientSecret,
            scopes: cfg.bot_scopes ?? DEFAULT_BOT_SCOPES,
            ...(cfg.redirect_url ? { redirectUrl: cfg.redirect_url } : {}),
          },
        }
      : {}),
  };
}
