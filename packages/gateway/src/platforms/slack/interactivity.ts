import type { AdapterContext } from "../shared/adapter.ts";
import type { Background } from "../shared/background.ts";
import { answerClick, type ClickReplies, stopClick } from "../shared/interactivity.ts";
import { closedCard, parseActionId } from "./blocks.ts";
import { slackCall } from "./client.ts";
import type { BlockActionsPayload } from "./webhook/parse.ts";
import type { Workspace, Workspaces } from "./workspaces.ts";

export interface InteractivityDeps {
  ctx: Pick<AdapterContext, "answer" | "stop">;
  views: { hasOpenCard(requestId: string): boolean };
  workspaces: Workspaces;
  background: Background;
}

/**
 * A click on one of our buttons (block_actions). An answer button answers
 * its request; link buttons open in the browser and need nothing here. The
 * clicker is told privately (an ephemeral) when the answer is refused.
 */
export async function handleBlockActions(
  deps: InteractivityDeps,
  payload: BlockActionsPayload,
): Promise<void> {
  if (payload.type !== "block_actions" || !payload.user) return;
  const action = payload.actions?.[0];
  if (!action) return;
  const teamId = payload.team?.id ?? payload.user.team_id;
  const userName = payload.user.username ?? payload.user.name;
  const who = {
    platform: "slack",
    userId: payload.user.id,
    ...(teamId ? { workspace: teamId } : {}),
    ...(userName ? { userName } : {}),
  };
  const tellClicker = async (text: string) => {
    const ws = await deps.workspaces.get(teamId);
    const at = where(payload);
    if (!ws || !at) return;
    deps.background.run(
      () =>
        slackCall(() =>
          ws.client.chat.postEphemeral({
            channel: at.channel,
            user: who.userId,
            ...(at.threadTs ? { thread_ts: at.threadTs } : {}),
            text,
          }),
        ),
      "could not tell the clicker",
    );
  };
  if (await stopClick(deps.ctx, action.action_id, who, tellClicker)) return;
  const parsed = parseActionId(action.action_id);
  if (!parsed) return;
  const click = {
    ...parsed,
    ...(action.text?.text !== undefined ? { label: action.text.text } : {}),
    who,
  };
  await answerClick(deps, click, {
    refused: (reason) => tellClicker(`⚠️ ${reason}.`),
    closeCard: async (line) => {
      const ws = await deps.workspaces.get(teamId);
      const at = where(payload);
      if (!ws || !at?.ts) return;
      closeInBackground(deps.background, ws, payload, { channel: at.channel, ts: at.ts }, line);
    },
  } satisfies ClickReplies);
}

/** Where the clicked card is: its channel, message and thread. */
function where(
  payload: BlockActionsPayload,
): { channel: string; ts: string | undefined; threadTs: string | undefined } | undefined {
  const channel = payload.container?.channel_id ?? payload.channel?.id;
  if (!channel) return undefined;
  return {
    channel,
    ts: payload.container?.message_ts ?? payload.message?.ts,
    threadTs: payload.container?.thread_ts ?? payload.message?.thread_ts,
  };
}

/** The card as Slack sent it with the click, its buttons (and notes) replaced by `line`. */
function closeInBackground(
  background: Background,
  ws: Workspace,
  payload: BlockActionsPayload,
  card: { channel: string; ts: string },
  line: string,
): void {
  const sections = (payload.message?.blocks ?? []).filter(
    (b) => b.type !== "actions" && b.type !== "context",
  );
  background.run(
    () =>
      slackCall(() =>
        ws.client.chat.update({
          channel: card.channel,
          ts: card.ts,
          text: payload.message?.text ?? "",
          blocks: closedCard(sections, line),
        }),
      ),
    "could not update the answered card",
  );
}
