import { type CardButton, cardButtons, type RequestEvent } from "../shared/requests.ts";
import { STOP_BUTTONS, stopActionId } from "../shared/stop.ts";
import { ANSWER_VERB, type AnswerData, STOP_VERB, type StopData } from "./webhook/parse.ts";

/**
 * Adaptive Cards for requests and links. Answers are `Action.Execute`
 * (Universal Actions: Teams invokes the bot with `adaptiveCard/action` and
 * shows the card the bot answers with, the card refresh); their data names
 * the request and the choice, never who may answer (the gateway decides).
 * Clients without Universal Actions send the same data as `Action.Submit`.
 */

export const CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive";

export interface AdaptiveCard {
  type: "AdaptiveCard";
  $schema: string;
  version: string;
  body: unknown[];
  actions?: unknown[];
}

export const textBlock = (text: string, extra: Record<string, unknown> = {}) => ({
  type: "TextBlock",
  text,
  wrap: true,
  ...extra,
});

export function card(body: unknown[], actions: unknown[] = []): AdaptiveCard {
  return {
    type: "AdaptiveCard",
    $schema: "http://adaptivecards.io/schemas/adaptive-card.json",
    version: "1.4",
    body,
    ...(actions.length ? { actions } : {}),
  };
}

const clip = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, max - 1)}…`);

function answerAction(event: RequestEvent, b: CardButton) {
  const data: AnswerData = {
    lobu: "answer",
    requestId: event.requestId,
    choice: b.choice,
    label: clip(b.label, 256),
  };
  return {
    type: "Action.Execute",
    title: clip(b.label, 80),
    verb: ANSWER_VERB,
    data,
    ...(b.style === "primary"
      ? { style: "positive" }
      : b.style === "danger"
        ? { style: "destructive" }
        : {}),
  };
}

export function openUrl(title: string, url: string) {
  return { type: "Action.OpenUrl", title, url };
}

/** A request's card: its text blocks, answer actions, and a settings link for a capability request. */
export function requestCard(
  event: RequestEvent,
  body: unknown[],
  linkUrl: string | undefined,
  approvable = true,
): AdaptiveCard {
  const actions: unknown[] = cardButtons(event, approvable).map((b) => answerAction(event, b));
  if (event.type === "capability_request" && linkUrl)
    actions.push(openUrl("Open settings", linkUrl));
  return card(body, actions);
}

/** The card once answered: the same text with the outcome line, and no actions. */
export function closedCard(body: unknown[], line: string): AdaptiveCard {
  return card([...body, textBlock(line, { weight: "Bolder" })]);
}

/** A card with one link (settings links). */
export function linkCard(text: string, title: string, url: string): AdaptiveCard {
  return card([textBlock(text)], [openUrl(title, url)]);
}

export const attachmentOf = (content: AdaptiveCard) => ({
  contentType: CARD_CONTENT_TYPE,
  content,
});

/** The streaming reply's Stop actions (shared/stop.ts), as a small card under its text. */
export function stopCard(messageId: string): AdaptiveCard {
  return card(
    [],
    STOP_BUTTONS.map((b) => {
      const data: StopData = { lobu: "stop", action: stopActionId(messageId, b.clearQueue) };
      return {
        type: "Action.Execute",
        title: b.label,
        verb: STOP_VERB,
        data,
        ...(b.clearQueue ? {} : { style: "destructive" }),
      };
    }),
  );
}
