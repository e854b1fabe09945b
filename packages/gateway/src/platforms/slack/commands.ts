import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import { type AdapterContext, REDELIVERY_MEMORY_MS } from "../shared/adapter.ts";
import type { Background } from "../shared/background.ts";
import { handleOnce } from "../shared/once.ts";
import type { CapabilityRequest } from "../shared/private-links.ts";
import { privateLinkText } from "../shared/requests.ts";
import { requestLinkBlocks, settingsBlocks } from "./blocks.ts";
import { slackCall } from "./client.ts";
import { postToResponseUrl, responseUrlAllowed } from "./respond.ts";
import type { SlashCommand } from "./webhook/parse.ts";
import type { Workspace, Workspaces } from "./workspaces.ts";

export interface SlackCommandsDeps {
  ctx: Pick<AdapterContext, "settingsLink" | "once">;
  workspaces: Workspaces;
  /** Web API base: a response_url on its origin is trusted too (an emulator, a proxy). */
  apiUrl: string;
  background: Background;
  log: Logger;
}

/**
 * The slash command and the settings links. A settings link carries a
 * single-use claim code, so it goes to the person alone: a DM, an ephemeral
 * message, a command's response_url; never a channel message, never an HTTP
 * answer (that goes back to whoever sent the request).
 */
export class SlackCommands {
  readonly #deps: SlackCommandsDeps;

  constructor(deps: SlackCommandsDeps) {
    this.#deps = deps;
  }

  /**
   * `settings` written to the bot: one link per message, however often Slack
   * delivers it (app_mention and message, retries).
   */
  async settingsMessage(ws: Workspace, origin: Origin, messageTs: string): Promise<void> {
    const { ctx, log, background } = this.#deps;
    const key = `settings:${ws.teamId}:${origin.channelId}:${messageTs}`;
    await handleOnce(
      { once: ctx.once, log, marker: { key, ttlMs: REDELIVERY_MEMORY_MS } },
      async () =>
        background.run(() => this.#sendSettings(ws, origin), "could not send the settings link"),
      () => undefined,
    );
  }

  /**
   * A slash command. Help is answered in the HTTP response; a settings link
   * never is: it is posted through the command's response_url, which Slack
   * shows to the person alone.
   */
  async slash(fields: SlashCommand): Promise<Record<string, unknown> | undefined> {
    const text = (fields.text ?? "").trim();
    if (!isSettingsCommand(text)) {
      return {
        response_type: "ephemeral",
        text: `Mention me in a channel or send me a direct message to talk to the agent. \`${fields.command ?? "/lobu"} settings\` opens your personal settings.`,
      };
    }
    this.#deps.background.run(
      () => this.#sendCommandSettings(fields),
      "could not send the settings link for a slash command",
    );
    return undefined;
  }

  /** A capability request's link, to the person asked only (the card in the channel has none). */
  async requestLink(ws: Workspace, origin: Origin, request: CapabilityRequest): Promise<void> {
    const url = request.url ?? (await this.#deps.ctx.settingsLink(origin));
    await slackCall(() =>
      ws.client.chat.postEphemeral({
        channel: origin.channelId,
        user: origin.userId,
        ...(origin.threadId ? { thread_ts: origin.threadId } : {}),
        text: privateLinkText(request, url),
        blocks: requestLinkBlocks(request, url),
      }),
    );
  }

  async #sendCommandSettings(fields: SlashCommand): Promise<void> {
    const origin: Origin = {
      platform: "slack",
      channelId: fields.channel_id ?? "",
      userId: fields.user_id ?? "",
      isDirect: fields.channel_name === "directmessage",
      ...(fields.team_id ? { workspace: fields.team_id } : {}),
      ...(fields.user_name ? { userName: fields.user_name } : {}),
    };
    const url = await this.#deps.ctx.settingsLink(origin);
    const content = { text: `Your settings: ${url}`, blocks: settingsBlocks(url) };
    const responseUrl = fields.response_url;
    if (responseUrl && responseUrlAllowed(responseUrl, this.#deps.apiUrl)) {
      await postToResponseUrl(responseUrl, { response_type: "ephemeral", ...content });
      return;
    }
    if (responseUrl)
      this.#deps.log.warn(
        "a slash command's response_url is not a Slack host; using chat.postEphemeral",
      );
    const ws = await this.#deps.workspaces.get(origin.workspace);
    if (!ws) throw new Error("no bot token for this Slack workspace");
    await slackCall(() =>
      ws.client.chat.postEphemeral({ channel: origin.channelId, user: origin.userId, ...content }),
    );
  }

  /** The settings link is personal: in a DM a message, in a channel an ephemeral only the person sees. */
  async #sendSettings(ws: Workspace, origin: Origin): Promise<void> {
    const url = await this.#deps.ctx.settingsLink(origin);
    const thread = origin.threadId ? { thread_ts: origin.threadId } : {};
    const content = { text: `Your settings: ${url}`, blocks: settingsBlocks(url) };
    if (origin.isDirect) {
      await slackCall(() =>
        ws.client.chat.postMessage({ channel: origin.channelId, ...thread, ...content }),
      );
    } else {
      await slackCall(() =>
        ws.client.chat.postEphemeral({
          channel: origin.channelId,
          user: origin.userId,
          ...thread,
          ...content,
        }),
      );
    }
  }
}

/** Words that open the personal settings page instead of going to the agent. */
export function isSettingsCommand(text: string): boolean {
  return /^\/?settings$/i.test(text.trim());
}
