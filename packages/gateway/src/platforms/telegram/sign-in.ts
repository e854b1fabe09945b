import { LobuError } from "@lobu/core";
import type { Context } from "hono";
import { z } from "zod";
import { userKeyOf } from "../../domain/origin.ts";
import { jsonBody } from "../../http/errors.ts";
import type { SettingsSignIn, SignInDeps } from "../../http/sign-in.ts";
import { verifyInitData } from "./init-data.ts";

const TelegramLogin = z.strictObject({
  initData: z.string().min(1).max(8192),
  /** A named bot's id (`[platforms.telegram.bots.<id>]`); none: the TELEGRAM_BOT_TOKEN bot. */
  bot: z.string().max(64).optional(),
});

/** What the Mini App sign-in checks initData against: each bot's token, by its id ("" for the default bot). */
export interface TelegramSignInSettings {
  bots: { id: string; token: string }[];
  initDataMaxAgeSec: number;
}
/** Telegram may sign initData up to a minute ahead of our clock (init-data.ts). */
const INIT_DATA_FUTURE_SKEW_MS = 60_000;
/** Telegram Web (web.telegram.org) shows Mini Apps in an iframe; nothing else may frame us. */
const TELEGRAM_FRAME_ANCESTORS = ["https://web.telegram.org"];

/**
 * The settings page opened as a Telegram Mini App: the signed initData is the
 * proof of who opened it, checked against the token of the bot the page names
 * (initData another bot signed is refused), and the session is that bot's
 * person (`telegram:<bot>:<user>`). Each launch opens one session: a copy of the
 * initData (a shared screen, a log) is refused while it would still be valid.
 * `settings` is undefined when Telegram is not set up on this gateway.
 */
export function telegramSignIn(
  settings: TelegramSignInSettings | undefined,
  deps: SignInDeps,
): SettingsSignIn {
  return {
    platform: "telegram",
    label: "Telegram",
    // Telegram Web shows the Mini App in an iframe: only then may these pages be framed, and only there.
    frameAncestors: settings ? TELEGRAM_FRAME_ANCESTORS : [],
    verify: async (c: Context) => {
      if (!settings)
        throw new LobuError("telegram_not_configured", "Telegram is not set up on this gateway", {
          status: 404,
        });
      const { initData, bot: botId = "" } = await jsonBody(c, TelegramLogin);
      const bot = settings.bots.find((b) => b.id === botId);
      const result = bot
        ? verifyInitData(initData, bot.token, { maxAgeSec: settings.initDataMaxAgeSec })
        : ({ ok: false, reason: `no Telegram bot "${botId}" on this gateway` } as const);
      if (!result.ok) {
        deps.audit({
          action: "settings.telegram_refused",
          actor: "unknown",
          details: { reason: result.reason, ...(botId ? { bot: botId } : {}) },
        });
        throw new LobuError("invalid_init_data", result.reason, {
          status: 401,
          hint: "Close the settings and open them again from the bot's button.",
        });
      }
      const userKey = userKeyOf({
        platform: "telegram",
        ...(botId ? { workspace: botId } : {}),
        userId: String(result.user.id),
      });
      // initData stays valid for the maximum age: a copy of it must not open a second
      // session. The page keeps its session across reloads instead.
      const fresh = await deps.once.claim(
        (new URLSearchParams(initData).get("hash") ?? "").toLowerCase(),
        settings.initDataMaxAgeSec * 1000 + INIT_DATA_FUTURE_SKEW_MS,
      );
      if (!fresh) {
        deps.audit({
          action: "settings.telegram_refused",
          actor: userKey,
          details: { reason: "initData already used" },
        });
        throw new LobuError("init_data_used", "this Mini App launch already opened a session", {
          status: 401,
          hint: "Close the settings and open them again from the bot's button.",
        });
      }
      const userName =
        [result.user.first_name, result.user.last_name].filter(Boolean).join(" ") ||
        result.user.username;
      return { userKey, ...(botId ? { workspace: botId } : {}), ...(userName ? { userName } : {}) };
    },
  };
}
