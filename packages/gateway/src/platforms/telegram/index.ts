import type { PlatformPlugin } from "../shared/plugin.ts";
import { TelegramAdapter } from "./adapter.ts";
import { telegramSettings } from "./config.ts";
import { telegramSignIn } from "./sign-in.ts";

/** Telegram: `[platforms.telegram]`, TELEGRAM_* variables; the settings page as a Mini App. */
export const telegram: PlatformPlugin = {
  id: "telegram",
  create: ({ section, env, publicUrlConfigured }) => {
    const settings = telegramSettings(section, env, { publicUrlConfigured });
    return settings && new TelegramAdapter(settings);
  },
  settingsSignIn: ({ section, env }, deps) => {
    let settings: ReturnType<typeof telegramSettings>;
    try {
      settings = telegramSettings(section, env, { publicUrlConfigured: true });
    } catch {
      // A broken Telegram setup already stopped the adapter with a clear error.
      settings = undefined;
    }
    return telegramSignIn(
      settings && {
        bots: settings.bots.map((b) => ({ id: b.id, token: b.token })),
        initDataMaxAgeSec: settings.initDataMaxAgeSec,
      },
      deps,
    );
  },
};
