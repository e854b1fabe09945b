import type { PlatformPlugin } from "../shared/plugin.ts";
import { GoogleChatAdapter } from "./adapter.ts";
import { googleChatSettings } from "./config.ts";

/** Google Chat: `[platforms.googlechat]`, GOOGLE_CHAT_* variables; an HTTP endpoint and the Chat API. */
export const googlechat: PlatformPlugin = {
  id: "googlechat",
  create: ({ section, env }) => {
    const settings = googleChatSettings(section, env);
    return settings && new GoogleChatAdapter(settings);
  },
};
