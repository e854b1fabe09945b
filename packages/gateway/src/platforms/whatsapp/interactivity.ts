import type { Logger } from "pino";
import type { AdapterContext } from "../shared/adapter.ts";
import type { Background } from "../shared/background.ts";
import { answerClick } from "../shared/interactivity.ts";
import { textMessage } from "./payloads.ts";
import { parseReplyId } from "./reply-ids.ts";
import type { WindowedSender } from "./sender.ts";
import type { WaInbound } from "./webhook/parse.ts";

export interface InteractivityDeps {
  ctx: Pick<AdapterContext, "answer" | "state">;
  views: { hasOpenCard(requestId: string): boolean };
  phoneNumberId: string;
  background: Background;
  log: Logger;
  sender(to: string): WindowedSender;
}

/**
 * A tap on a card's reply button or list row (button_reply / list_reply).
 * The answer is taken before Meta gets its 200; what the person is told
 * after (a refusal, the outcome below the card) is sent in the background.
 */
export async function handleClick(
  deps: InteractivityDeps,
  click: Extract<WaInbound, { kind: "click" }>,
): Promise<void> {
  const { background, log } = deps;
  const to = click.from;
  const tell = (text: string, replyTo?: string) =>
    background.run(
      () => deps.sender(to).send(textMessage(to, text, replyTo)),
      "could not answer a WhatsApp button reply",
    );
  const answer = await parseReplyId(click.replyId, deps.ctx.state, log);
  if (!answer) {
    tell("⚠️ This button is no longer active.", click.message.id);
    return;
  }
  const who = {
    platform: "whatsapp",
    workspace: deps.phoneNumberId,
    userId: click.from,
    ...(click.name ? { userName: click.name } : {}),
  };
  await answerClick(
    deps,
    { ...answer, label: click.title, who },
    {
      refused: async (reason) => tell(`⚠️ ${reason}`, click.message.id),
      // The card keeps its buttons (no edits): the outcome goes below it, unless a live view sends it.
      closeCard: async (line) => tell(line.replace(/\*\*/g, "*"), click.message.context?.id),
    },
  );
}
