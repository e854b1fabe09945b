import type { Api } from "grammy";
import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import type { Background } from "../shared/background.ts";
import type { CapabilityRequest } from "../shared/private-links.ts";
import { linkLabel, privateLinkText } from "../shared/requests.ts";
import { sendText, tgCall } from "./client.ts";
import { settingsKeyboard } from "./keyboard.ts";

export interface TelegramCommandsDeps {
  api: Api;
  botUsername: string;
  ctx: Pick<AdapterContext, "settingsLink">;
  log: Logger;
}

const GO_PRIVATE = "Your settings are personal: open them in a private chat with me.";

/**
 * The bot's commands (/settings, /start, /help) and its settings links. A
 * settings link carries a single-use claim code, so it goes to the person's
 * private chat only; in a group the bot points there instead.
 */
export class TelegramCommands {
  readonly #deps: TelegramCommandsDeps;

  constructor(deps: TelegramCommandsDeps) {
    this.#deps = deps;
  }

  /** Tell Telegram the commands (the menu shown in the chat). */
  register(background: Background): void {
    background.run(
      () =>
        this.#deps.api.setMyCommands([
          { command: "settings", description: "Your personal settings (API keys, accounts)" },
          { command: "help", description: "How to talk to the agent" },
          {
            command: "stop",
            description: "Stop the agent's running reply (/stop all: and the queue)",
          },
        ]),
      "could not set the bot's commands",
    );
  }

  /** Handle a command addressed to the bot; false when it is none of ours (the agent gets it). */
  async handle(
    origin: Origin,
    command: { name: string; args: string } | undefined,
  ): Promise<boolean> {
    const name = command?.name;
    if (name === "settings" || (name === "start" && command?.args === "settings")) {
      await this.#sendSettings(origin);
      return true;
    }
    if (name === "start" || name === "help") {
      await sendText(
        this.#deps.api,
        origin,
        origin.isDirect
          ? "Hi! Send me a message and the agent answers here. /stop stops a reply; /settings opens your personal settings."
          : `Mention me (@${this.#deps.botUsername}) or reply to one of my messages to talk to the agent. /stop stops your reply; /settings opens your personal settings.`,
      );
      return true;
    }
    return false;
  }

  /**
   * A capability request's link, to the person alone: in their private chat
   * with the bot, or (when they never opened one) a button into it.
   */
  async requestLink(origin: Origin, request: CapabilityRequest): Promise<void> {
    const { api, botUsername } = this.#deps;
    const url = request.url ?? (await this.#deps.ctx.settingsLink(origin));
    try {
      await tgCall(() =>
        api.sendMessage(
          Number(origin.userId),
          request.kind === "mcp" && request.url
            ? privateLinkText(request, url)
            : `The agent asks for ${request.value}. Answer in your settings:`,
          {
            reply_markup:
              request.kind === "mcp" && request.url
                ? { inline_keyboard: [[{ text: linkLabel(request), url }]] }
                : settingsKeyboard({ isPrivate: true, botUsername, url }),
          },
        ),
      );
    } catch (err) {
      this.#deps.log.debug(
        { err },
        "could not message the person privately; pointing them to the bot",
      );
      await tgCall(() =>
        api.sendMessage(Number(origin.channelId), GO_PRIVATE, {
          reply_markup: settingsKeyboard({ isPrivate: false, botUsername }),
          ...(origin.threadId ? { message_thread_id: Number(origin.threadId) } : {}),
        }),
      );
    }
  }

  /** In a private chat the settings as a Mini App; in a group a button into the private chat. */
  async #sendSettings(origin: Origin): Promise<void> {
    const { api, botUsername } = this.#deps;
    const url = origin.isDirect ? await this.#deps.ctx.settingsLink(origin) : undefined;
    await tgCall(() =>
      api.sendMessage(
        Number(origin.channelId),
        origin.isDirect
          ? "Your personal settings for this agent (API keys, connected accounts, approvals):"
          : GO_PRIVATE,
        {
          reply_markup: settingsKeyboard({
            isPrivate: origin.isDirect,
            botUsername,
            ...(url ? { url } : {}),
          }),
          ...(origin.threadId ? { message_thread_id: Number(origin.threadId) } : {}),
        },
      ),
    );
  }
}
