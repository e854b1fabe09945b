import { auth, chat, type chat_v1 } from "@googleapis/chat";
import { registerSecret } from "@lobu/core";
import { type RateLimit, rateLimitedCalls } from "../shared/pacing.ts";
import type { GoogleChatSettings } from "./config.ts";

export type ChatApi = chat_v1.Chat;

/** The scope a Chat app writes messages with (app authentication). */
const CHAT_BOT_SCOPE = "https://www.googleapis.com/auth/chat.bot";
/**
 * The scope an app reads a space's messages with (app authentication): a
 * Workspace admin approves it for the app, or Chat refuses the reads (403).
 */
export const CHAT_READ_SCOPE = "https://www.googleapis.com/auth/chat.app.messages.readonly";
/** The token endpoint google-auth-library posts its JWT grant to (the assertion's audience). */
const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";

/**
 * The Chat API client (@googleapis/chat), authenticated as the app's service
 * account (a JWT bearer grant) with `scope` (chat.bot: what the app posts;
 * CHAT_READ_SCOPE: the history it reads, a token of its own). Requests are
 * not retried by the client: a rate limit becomes RetryLater (shared pacing)
 * instead.
 */
export function chatClient(settings: GoogleChatSettings, scope = CHAT_BOT_SCOPE): ChatApi {
  registerSecret(settings.serviceAccount.private_key);
  const jwt = new auth.JWT({
    email: settings.serviceAccount.client_email,
    key: settings.serviceAccount.private_key,
    scopes: [scope],
  });
  // google-auth-library posts to Google's token endpoint; another one (an emulator) is reached by rewriting that URL only.
  if (settings.tokenUrl !== GOOGLE_TOKEN_URL)
    jwt.transporter.interceptors.request.add({
      resolved: async (config) => {
        if (String(config.url) === GOOGLE_TOKEN_URL) config.url = new URL(settings.tokenUrl);
        return config;
      },
    });
  return chat({ version: "v1", auth: jwt, rootUrl: settings.apiRoot, retry: false });
}

interface GaxiosLike {
  status?: number;
  response?: { status?: number; headers?: unknown; data?: unknown };
  message?: string;
}

function retryAfterOf(headers: unknown): number | undefined {
  const value =
    headers instanceof Headers
      ? headers.get("retry-after")
      : (headers as Record<string, string> | undefined)?.["retry-after"];
  const sec = Number(value);
  return Number.isFinite(sec) && sec > 0 ? sec : undefined;
}

/** Google answers a rate limit with 429 RESOURCE_EXHAUSTED (and sometimes Retry-After). */
export function rateLimitOf(err: unknown): RateLimit | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as GaxiosLike;
  const status = e.response?.status ?? e.status;
  const body = e.response?.data as { error?: { status?: string } } | undefined;
  if (status !== 429 && body?.error?.status !== "RESOURCE_EXHAUSTED") return undefined;
  const retryAfterSec = retryAfterOf(e.response?.headers);
  return {
    ...(retryAfterSec ? { retryAfterSec } : {}),
    message: e.message ?? "Google Chat rate limit",
  };
}

export const gcCall = rateLimitedCalls(rateLimitOf);
