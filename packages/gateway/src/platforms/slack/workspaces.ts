import type { WebClient } from "@slack/web-api";
import type { Logger } from "pino";
import { z } from "zod";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { slackErrorCode, webClient } from "./client.ts";

/** A workspace the bot can act in: its client and who the bot is there. */
export interface Workspace {
  teamId: string;
  teamName?: string;
  botUserId: string;
  botId?: string;
  client: WebClient;
}

/** What an OAuth install leaves in the adapter's state as `install:<team>` (the token itself is a secret). */
export const Installation = z.object({
  teamId: z.string().min(1),
  teamName: z.string().optional(),
  botUserId: z.string().min(1),
  botId: z.string().optional(),
  appId: z.string().optional(),
  scopes: z.array(z.string()),
  installedBy: z.string().optional(),
  installedAt: z.number(),
});
export type Installation = z.infer<typeof Installation>;

const installKey = (teamId: string) => `install:${teamId}`;
const tokenName = (teamId: string) => `bot_token.${teamId}`;

/**
 * Bot tokens by team: the single workspace of SLACK_BOT_TOKEN, and workspaces
 * installed through OAuth (token encrypted in the secret store, details in the
 * adapter's state). Looked up by each event's team id.
 */
export class Workspaces {
  readonly #apiUrl: string;
  readonly #log: Logger;
  readonly #ctx: Pick<AdapterContext, "state" | "secrets">;
  readonly #cache = new Map<string, Workspace>();
  #envTeam: string | undefined;

  constructor(apiUrl: string, log: Logger, ctx: Pick<AdapterContext, "state" | "secrets">) {
    this.#apiUrl = apiUrl;
    this.#log = log;
    this.#ctx = ctx;
  }

  /** Identify the SLACK_BOT_TOKEN workspace (auth.test); fails loudly on a bad token. */
  async addEnvToken(token: string): Promise<Workspace> {
    const client = webClient(token, this.#apiUrl, this.#log);
    let auth: Awaited<ReturnType<WebClient["auth"]["test"]>>;
    try {
      auth = await client.auth.test();
    } catch (err) {
      const code = slackErrorCode(err);
      if (!code) {
        throw new Error(
          `could not reach the Slack Web API at ${this.#apiUrl} (${(err as Error).message}); check the network and SLACK_API_URL`,
        );
      }
      throw new Error(
        `Slack rejected SLACK_BOT_TOKEN (${code}); copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page`,
      );
    }
    if (!auth.team_id || !auth.user_id)
      throw new Error("Slack auth.test did not name the team and bot user");
    const ws: Workspace = {
      teamId: auth.team_id,
      botUserId: auth.user_id,
      client,
      ...(auth.team ? { teamName: auth.team } : {}),
      ...(auth.bot_id ? { botId: auth.bot_id } : {}),
    };
    this.#envTeam = ws.teamId;
    this.#cache.set(ws.teamId, ws);
    return ws;
  }

  async get(teamId: string | undefined): Promise<Workspace | undefined> {
    if (!teamId) return this.#envTeam ? this.#cache.get(this.#envTeam) : undefined;
    const cached = this.#cache.get(teamId);
    if (cached) return cached;
    const [raw, token] = await Promise.all([
      this.#ctx.state.get(installKey(teamId)),
      this.#ctx.secrets.get(tokenName(teamId)),
    ]);
    if (!raw || !token) return undefined;
    const source = { record: "Slack installation", key: installKey(teamId) };
    const install = readRecord(
      Installation,
      raw,
      source,
      this.#log,
      "the workspace reads as not installed",
    );
    if (!install) return undefined;
    const ws: Workspace = {
      teamId,
      botUserId: install.botUserId,
      client: webClient(token, this.#apiUrl, this.#log),
      ...(install.teamName ? { teamName: install.teamName } : {}),
      ...(install.botId ? { botId: install.botId } : {}),
    };
    this.#cache.set(teamId, ws);
    return ws;
  }

  async install(install: Installation, token: string): Promise<void> {
    await this.#ctx.secrets.set(tokenName(install.teamId), token);
    await this.#ctx.state.set(installKey(install.teamId), JSON.stringify(install));
    this.#cache.delete(install.teamId);
  }

  /**
   * The app was uninstalled or its tokens revoked: forget the workspace and
   * delete its (now useless) bot token. The SLACK_BOT_TOKEN workspace stays
   * known: only the environment can change that token.
   */
  async remove(teamId: string): Promise<void> {
    if (teamId === this.#envTeam) return;
    this.#cache.delete(teamId);
    await this.#ctx.state.del(installKey(teamId));
    await this.#ctx.secrets.del(tokenName(teamId));
  }
}
