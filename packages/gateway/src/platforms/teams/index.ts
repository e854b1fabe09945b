import type { PlatformPlugin } from "../shared/plugin.ts";
import { TeamsAdapter } from "./adapter.ts";
import { teamsSettings } from "./config.ts";

/** Microsoft Teams (Bot Framework): `[platforms.teams]`, TEAMS_* variables, JWT-signed activities. */
export const teams: PlatformPlugin = {
  id: "teams",
  create: ({ section, env }) => {
    const settings = teamsSettings(section, env);
    return settings && new TeamsAdapter(settings);
  },
};
