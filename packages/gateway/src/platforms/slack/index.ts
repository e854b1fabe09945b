import type { PlatformPlugin } from "../shared/plugin.ts";
import { SlackAdapter } from "./adapter.ts";
import { slackSettings } from "./config.ts";

/** Slack: `[platforms.slack]`, SLACK_* variables; Events API or Socket Mode, OAuth installs. */
export const slack: PlatformPlugin = {
  id: "slack",
  create: ({ section, env }) => {
    const settings = slackSettings(section, env);
    return settings && new SlackAdapter(settings);
  },
};
