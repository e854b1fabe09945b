import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "./adapter.ts";
import { outcomeMarkdown } from "./requests.ts";
import { parseStopAction, stopFromChat } from "./stop.ts";

/** A person clicked an answer button on a request card. */
export interface ButtonClick {
  requestId: string;
  choice: string;
  /** The button's label as shown, when the platform tells it (else the choice is shown). */
  label?: string;
  who: Pick<Origin, "platform" | "workspace" | "userId" | "userName">;
}

/** How a platform replies to a click; each reply is optional where the platform has no such thing. */
export interface ClickReplies {
  /** The answer was refused (not the asker, already answered, expired): tell the clicker alone. */
  refused(reason: string): Promise<void>;
  /** The answer was taken (a platform that must acknowledge every click does it here). */
  accepted?(label: string): Promise<void>;
  /**
   * Replace the card's buttons with `line` (Markdown). Called only when no
   * live view on this gateway will do it on request_resolved (the turn runs
   * elsewhere, or this gateway restarted).
   */
  closeCard?(line: string): Promise<void>;
}

/**
 * The one way a button click answers a request: through the gateway
 * (ctx.answer checks that the clicker may answer), then the platform's
 * replies.
 */
export async function answerClick(
  deps: {
    ctx: Pick<AdapterContext, "answer">;
    views: { hasOpenCard(requestId: string): boolean };
  },
  click: ButtonClick,
  replies: ClickReplies,
): Promise<void> {
  const result = await deps.ctx.answer(click.requestId, { choice: click.choice }, click.who);
  if (!result.ok) {
    await replies.refused(result.reason ?? "this request cannot be answered");
    return;
  }
  const label = click.label ?? click.choice;
  await replies.accepted?.(label);
  if (deps.views.hasOpenCard(click.requestId)) return;
  await replies.closeCard?.(
    outcomeMarkdown(label, click.choice, click.who.userName ?? click.who.userId),
  );
}

/**
 * A click on a streaming reply's Stop button (stop.ts), if `actionId` is one:
 * the turn is stopped through the gateway (which checks that the clicker may
 * stop it); a refusal, or what was dropped from the queue, is told to the
 * clicker alone. False when the id is not a Stop button's.
 */
export async function stopClick(
  ctx: Pick<AdapterContext, "stop">,
  actionId: string,
  who: ButtonClick["who"],
  tell: (text: string, ok: boolean) => Promise<void>,
): Promise<boolean> {
  const stop = parseStopAction(actionId);
  if (!stop) return false;
  await stopFromChat(
    ctx,
    { who, target: { messageId: stop.messageId }, clearQueue: stop.clearQueue },
    tell,
  );
  return true;
}
