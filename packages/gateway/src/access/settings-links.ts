import type { LobuConfig } from "@lobu/core";
import type { AgentRegistry } from "../agents/registry.ts";
import { type Origin, userKeyOf } from "../domain/origin.ts";
import type { PublicUrl } from "../http/public-url.ts";
import type { WebSessions } from "./web-sessions.ts";

export interface SettingsLinksDeps {
  sessions: Pick<WebSessions, "createClaim">;
  agents: Pick<AgentRegistry, "get" | "defaultAgent">;
  /** `[platforms.<name>].agent`: the agent each platform routes to by default. */
  platforms: LobuConfig["platforms"];
  publicUrl: Pick<PublicUrl, "value">;
}

/** Links into the settings page, for the chat platforms, the turn runner and the API. */
export class SettingsLinks {
  readonly #deps: SettingsLinksDeps;

  constructor(deps: SettingsLinksDeps) {
    this.#deps = deps;
  }

  /**
   * A link that opens the settings page for the person behind `origin` (on the
   * capability request it was made for, if any). The link carries a single-use claim code
   * (valid 10 minutes) bound to that person, the agent and the thread it was
   * sent to: whoever else gets hold of it after it was used gets nothing.
   *
   * Without `agentId` the link is for the agent the platform routes to by
   * default: a named bot's (`[platforms.<name>.bots.<workspace>].agent`),
   * `[platforms.<name>].agent`, else the default agent.
   */
  async create(
    origin: Origin,
    opts: { agentId?: string; requestId?: string } = {},
  ): Promise<string> {
    const agentId = opts.agentId ?? (await this.defaultAgentFor(origin.platform, origin.workspace));
    const code = await this.#deps.sessions.createClaim({
      userKey: userKeyOf(origin),
      agentId,
      origin,
      ...(opts.requestId ? { requestId: opts.requestId } : {}),
    });
    return `${this.#deps.publicUrl.value}/settings/claim/${code}`;
  }

  /**
   * The agent a platform's messages go to when they do not name one: on
   * Telegram and Discord, a named bot (its id is the `workspace` of its
   * origins) is its own agent.
   */
  async defaultAgentFor(platform: string, workspace?: string): Promise<string> {
    const section = this.#deps.platforms[platform];
    const bots = section?.bots as Record<string, { agent?: unknown }> | undefined;
    const bot = workspace && bots && Object.hasOwn(bots, workspace) ? bots[workspace] : undefined;
    if (typeof bot?.agent === "string" && (await this.#deps.agents.get(bot.agent)))
      return bot.agent;
    const configured = section?.agent;
    if (typeof configured === "string" && (await this.#deps.agents.get(configured)))
      return configured;
    return (await this.#deps.agents.defaultAgent()).id;
  }
}
