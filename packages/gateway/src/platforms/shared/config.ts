import { describeIssues, LobuError } from "@lobu/core";
import type { z } from "zod";

/**
 * Validate a `[platforms.<name>]` section of lobu.toml with the adapter's
 * schema; errors name the full key (`platforms.slack.mode: ...`).
 */
export function parsePlatformSection<S extends z.ZodType>(
  platform: string,
  schema: S,
  section: Record<string, unknown> | undefined,
): z.infer<S> {
  const result = schema.safeParse(section ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    ...issue,
    path: ["platforms", platform, ...issue.path],
  }));
  throw new LobuError("config_invalid", describeIssues("lobu.toml", issues), {
    hint: `See docs/platforms/${platform}.md for the [platforms.${platform}] keys.`,
  });
}

/** A platform is misconfigured in a way only the environment can fix. */
export function platformSetupError(platform: string, message: string, hint: string): LobuError {
  return new LobuError("platform_config", `${platform}: ${message}`, {
    hint: `${hint} See docs/platforms/${platform}.md.`,
  });
}

/** An API base URL from the environment (tests, local servers): http(s) or a setup error. */
export function apiBaseUrl(platform: string, variable: string, value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw platformSetupError(
      platform,
      `${variable} is not an http(s) URL: ${JSON.stringify(value)}`,
      `Unset it to use the real API, or set it to the API's base URL.`,
    );
  }
  return value;
}

/** A bot that answers as one agent: `[platforms.<platform>.bots.<id>]` (id "" is the platform's token bot). */
export interface FixedAgentBot {
  id: string;
  agentId?: string | undefined;
}

/**
 * A named bot carries its agent's name and picture, so it always answers as
 * that agent: a `[channels."<platform>:<bot>:<chat>"]` entry naming another
 * agent would have that agent speak under this bot's name, and is refused at
 * startup. Persona, prompt, model and tool-set overrides stay allowed.
 */
export function refuseForeignChannelAgents(
  platform: string,
  bots: readonly FixedAgentBot[],
  channels: Record<string, { agent?: string | undefined }>,
): void {
  const agentOf = new Map(bots.filter((b) => b.id && b.agentId).map((b) => [b.id, b.agentId]));
  for (const [key, section] of Object.entries(channels)) {
    const [keyPlatform, workspace = ""] = key.split(":");
    if (keyPlatform !== platform || !section.agent) continue;
    const own = agentOf.get(workspace);
    if (own && section.agent !== own) {
      throw new LobuError(
        "config_invalid",
        `lobu.toml: [channels."${key}"] names the agent "${section.agent}", but that chat is the bot [platforms.${platform}.bots.${workspace}], which always answers as "${own}"`,
        {
          hint: `Remove agent from [channels."${key}"] (persona, system_prompt, model and tools may stay), or give "${section.agent}" its own bot under [platforms.${platform}.bots.<id>]. See docs/platforms/${platform}.md.`,
        },
      );
    }
  }
}

/**
 * The same rule for the `/bind` chat command: in a named bot's chat, binding
 * another agent is refused with a message for the chat (unbinding, or binding
 * the bot's own agent, go through: the bot answers as that agent anyway).
 */
export function refuseForeignBinding(
  platform: string,
  bot: FixedAgentBot,
  agentId: string | null,
): void {
  if (!bot.id || !bot.agentId || agentId === null || agentId === bot.agentId) return;
  throw new LobuError(
    "binding_fixed",
    `this bot always answers as the agent "${bot.agentId}"; it cannot be bound to "${agentId}"`,
    {
      hint: `Add the bot of "${agentId}" to this chat instead (an operator sets one up under [platforms.${platform}.bots.<id>] in lobu.toml).`,
    },
  );
}
