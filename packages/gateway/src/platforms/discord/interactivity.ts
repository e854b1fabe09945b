import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import type { Background } from "../shared/background.ts";
import { answerClick, stopClick } from "../shared/interactivity.ts";
import { type ActionRow, linkRow, parseCustomId } from "./components.ts";
import { toDiscord } from "./format.ts";
import { actorOf, displayName, type Interaction } from "./webhook/parse.ts";

/** An interaction response (the HTTP answer to an interaction). */
export type InteractionResponse =
  | { type: 1 }
  | { type: 4; data: { content: string; flags?: number; components?: unknown[] } }
  /** Deferred: Discord shows "thinking…" until the app edits the answer in through the interaction's webhook. */
  | { type: 5; data: { flags: number } }
  | { type: 6 }
  | { type: 7; data: { content: string; components: unknown[] } };

const EPHEMERAL = 64;
const ephemeral = (content: string, components?: unknown[]): InteractionResponse => ({
  type: 4,
  data: { content, flags: EPHEMERAL, ...(components ? { components } : {}) },
});

export interface InteractivityDeps {
  /** The bot's id in lobu.toml ("" for DISCORD_BOT_TOKEN's): the workspace of its people. */
  botId: string;
  ctx: Pick<AdapterContext, "answer" | "state" | "settingsLink" | "stop">;
  views: { hasOpenCard(requestId: string): boolean };
  log: Logger;
}

/**
 * A click on a card's button or a pick in its select menu. The answer goes
 * through the gateway (which checks who may answer); a refusal is told to the
 * clicker alone (ephemeral); otherwise the click is acknowledged, and when no
 * live view here will close the card, the answer closes it in place.
 */
export async function handleComponent(
  deps: InteractivityDeps,
  interaction: Interaction,
): Promise<InteractionResponse> {
  const actor = actorOf(interaction);
  const data = interaction.data;
  if (!actor || !data?.custom_id) return ephemeral("⚠️ This button is not one of mine.");
  const who = {
    platform: "discord",
    ...(deps.botId ? { workspace: deps.botId } : {}),
    userId: actor.id,
    userName: displayName(actor),
  };
  // A Stop button: the reply's next edit says it stopped; a refusal (or what left the queue) is the clicker's alone.
  let stopResponse: InteractionResponse = { type: 6 };
  const stopped = await stopClick(deps.ctx, data.custom_id, who, async (text) => {
    stopResponse = ephemeral(toDiscord(text)[0] ?? text);
  });
  if (stopped) return stopResponse;
  const parsed = await parseCustomId(data.custom_id, data.values?.[0], deps.ctx.state, deps.log);
  if (!parsed) return ephemeral("⚠️ This button is no longer active.");
  let response: InteractionResponse = { type: 6 };
  const label = labelOf(interaction, data.custom_id, parsed.choice);
  await answerClick(
    deps,
    {
      ...parsed,
      ...(label ? { label } : {}),
      who,
    },
    {
      refused: async (reason) => {
        response = ephemeral(`⚠️ ${reason}`);
      },
      closeCard: async (line) => {
        const content =
          `${interaction.message?.content ?? ""}\n\n${toDiscord(line)[0] ?? ""}`.trim();
        response = { type: 7, data: { content: content.slice(0, 2000), components: [] } };
      },
    },
  );
  return response;
}

/** The label shown on the clicked button (or the picked option). */
function labelOf(interaction: Interaction, customId: string, choice: string): string | undefined {
  type Item = { custom_id?: string; label?: string; options?: { label: string; value: string }[] };
  const rows = (interaction.message?.components ?? []) as { components?: Item[] }[];
  for (const item of rows.flatMap((r) => r.components ?? [])) {
    if (item.custom_id !== customId) continue;
    return item.options ? item.options.find((o) => o.value === choice)?.label : item.label;
  }
  return undefined;
}

/** What an interaction's deferred answer is edited to (the interaction webhook's `@original`). */
export interface ReplyEdit {
  content: string;
  components?: ActionRow[];
}

export interface CommandDeps {
  botId: string;
  ctx: Pick<AdapterContext, "settingsLink">;
  background: Pick<Background, "run">;
  /** Edit the interaction's deferred answer: PATCH /webhooks/{application}/{token}/messages/@original. */
  editReply(interaction: Interaction, message: ReplyEdit): Promise<void>;
}

const SETTINGS_TEXT =
  "Your personal settings for this agent (API keys, connected accounts, approvals). Only you see this; the link works once.";

/**
 * `/lobu`: the person's settings link, as a button only they see. The HTTP
 * answer is a deferred ephemeral one (type 5, flags 64) carrying no link:
 * that body goes back to whoever posted the signed request, and a link
 * there would be a claim code for anyone who captured or replays it. The
 * link goes to the person through the interaction's webhook (an edit of
 * the ephemeral answer), which only Discord and the app can reach.
 */
export function handleCommand(deps: CommandDeps, interaction: Interaction): InteractionResponse {
  const actor = actorOf(interaction);
  if (!actor || interaction.data?.name !== "lobu") return ephemeral("⚠️ Unknown command.");
  const origin: Origin = {
    platform: "discord",
    ...(deps.botId ? { workspace: deps.botId } : {}),
    channelId: interaction.channel_id ?? "",
    userId: actor.id,
    userName: displayName(actor),
    isDirect: interaction.guild_id === undefined,
  };
  deps.background.run(async () => {
    let url: string;
    try {
      url = await deps.ctx.settingsLink(origin);
    } catch (err) {
      // The person would otherwise watch "thinking…" until Discord gives up.
      await deps.editReply(interaction, {
        content: "⚠️ Could not make your settings link. Try `/lobu` again.",
      });
      throw err;
    }
    await deps.editReply(interaction, {
      content: SETTINGS_TEXT,
      components: [linkRow("Open settings", url)],
    });
  }, "could not send the /lobu settings link");
  return { type: 5, data: { flags: EPHEMERAL } };
}
