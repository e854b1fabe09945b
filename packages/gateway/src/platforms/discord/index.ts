import { refuseForeignChannelAgents } from "../shared/config.ts";
import type { PlatformPlugin } from "../shared/plugin.ts";
import { DiscordAdapter } from "./adapter.ts";
import { discordSettings } from "./config.ts";

/** Discord: `[platforms.discord]`, DISCORD_* variables; the Gateway and signed interactions. */
export const discord: PlatformPlugin = {
  id: "discord",
  create: ({ section, env, channels }) => {
    const settings = discordSettings(section, env);
    if (settings) refuseForeignChannelAgents("discord", settings.bots, channels ?? {});
    return settings && new DiscordAdapter(settings);
  },
};
