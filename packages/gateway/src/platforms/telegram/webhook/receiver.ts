import { errorBody, randomToken } from "@lobu/core";
import type { Bot } from "grammy";
import type { Logger } from "pino";
import { type AckPolicy, withinDeadline } from "../../shared/ack.ts";
import type { AdapterContext } from "../../shared/adapter.ts";
import type { Background } from "../../shared/background.ts";
import type { PlatformRoutes } from "../../shared/routes.ts";
import type { TelegramBotSettings } from "../config.ts";
import { parseUpdate } from "./parse.ts";
import { secretTokenMatches } from "./verify.ts";

/** The updates the bot asks for (setWebhook, getUpdates). */
export const ALLOWED_UPDATES = ["message", "callback_query"] as const;
/** How long to wait for the gateway's own URL before giving up on setWebhook. */
const PUBLIC_URL_WAIT_MS = 60_000;

/**
 * Telegram delivers a webhook call again when it gets no 2xx answer (it
 * states no deadline). Storing is still tried a few times first: Telegram
 * chooses when it delivers again.
 */
export const TELEGRAM_WEBHOOK_ACK: AckPolicy = {
  transport: "Telegram webhook",
  redelivers: true,
  storeAttempts: 4,
};

/**
 * With long polling an update counts as received once its handler returns
 * (the next getUpdates confirms it): nobody delivers it again, so storing is
 * tried a few times to ride out a short store outage.
 */
export const TELEGRAM_POLLING_ACK: AckPolicy = {
  transport: "Telegram long polling",
  redelivers: false,
  storeAttempts: 4,
};

export interface WebhookDeps {
  bot: Bot;
  /** /telegram/webhook, or /telegram/<id>/webhook for a named bot. */
  path: string;
  /** Where a generated secret is kept (one per bot). */
  secretName: string;
  settings: Pick<TelegramBotSettings, "webhookSecret" | "webhookUrl">;
  ctx: Pick<AdapterContext, "secrets" | "publicUrl">;
  background: Background;
  log: Logger;
  stopped: AbortSignal;
}

/**
 * POST /telegram/webhook (a named bot's: /telegram/<id>/webhook, each with
 * its own secret token, so one bot's secret opens no other's route), and setWebhook once the gateway listens (so
 * Telegram's first delivery finds the route). A call without the secret
 * token is refused before its body is read.
 */
export async function startWebhook(routes: PlatformRoutes, deps: WebhookDeps): Promise<void> {
  const { bot, log } = deps;
  const secret = await webhookSecret(deps);
  routes.post(deps.path, async (c) => {
    if (!secretTokenMatches(c.req.header("x-telegram-bot-api-secret-token"), secret)) {
      log.warn("refused a Telegram webhook call without the right secret token");
      return c.json(errorBody("bad_secret", "X-Telegram-Bot-Api-Secret-Token does not match"), 401);
    }
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json(errorBody("malformed_json", "body is not JSON"), 400);
    }
    const update = parseUpdate(body);
    if (!update) return c.json(errorBody("bad_request", "not an Update"), 400);
    try {
      await withinDeadline(TELEGRAM_WEBHOOK_ACK, log, () => bot.handleUpdate(update));
    } catch (err) {
      // Telegram redelivers on a non-2xx answer; the update's once-marker lets that redelivery through.
      log.error({ err, updateId: update.update_id }, "could not handle a Telegram update");
      return c.json(errorBody("internal", "could not handle the update"), 500);
    }
    return c.body(null, 200);
  });
  deps.background.run(async () => {
    // Set once the gateway listens (even with webhook_url), so Telegram's first delivery finds the route.
    const listening = await publicUrl(deps);
    const url = deps.settings.webhookUrl ?? `${listening}${deps.path}`;
    await bot.api.setWebhook(url, { secret_token: secret, allowed_updates: [...ALLOWED_UPDATES] });
    log.info({ url }, "Telegram webhook set");
  }, "could not set the Telegram webhook (is the public URL reachable over HTTPS?)");
}

/** getUpdates in a loop (no public URL needed); resolves when polling stops. */
export function startPolling(deps: Pick<WebhookDeps, "bot" | "log" | "stopped">): Promise<void> {
  return deps.bot
    .start({ allowed_updates: [...ALLOWED_UPDATES], drop_pending_updates: false })
    .catch((err) => {
      if (!deps.stopped.aborted) deps.log.error({ err }, "Telegram long polling stopped");
    });
}

/** The bot's secret from the environment, or one generated once and kept in the secret store. */
async function webhookSecret(deps: WebhookDeps): Promise<string> {
  if (deps.settings.webhookSecret) return deps.settings.webhookSecret;
  const stored = await deps.ctx.secrets.get(deps.secretName);
  if (stored) return stored;
  const secret = randomToken(32);
  await deps.ctx.secrets.set(deps.secretName, secret);
  return secret;
}

/** The gateway's URL is known only once it listens (adapters start before that). */
async function publicUrl(deps: WebhookDeps): Promise<string> {
  const deadline = Date.now() + PUBLIC_URL_WAIT_MS;
  while (!deps.ctx.publicUrl) {
    if (deps.stopped.aborted || Date.now() > deadline)
      throw new Error("the gateway's public URL never became known");
    await new Promise((r) => setTimeout(r, 50));
  }
  return deps.ctx.publicUrl;
}
