import type { Logger } from "pino";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import type { Background } from "../shared/background.ts";
import { answerClick, stopClick } from "../shared/interactivity.ts";
import { outcomeMarkdown } from "../shared/requests.ts";
import type { CardStore } from "./card-store.ts";
import { attachmentOf, CARD_CONTENT_TYPE, closedCard, textBlock } from "./cards.ts";
import { type ConnectorClient, teamsCall } from "./client.ts";
import type { ConversationRef } from "./conversations.ts";
import { cardText } from "./format.ts";
import type { AnswerData, StopData } from "./webhook/parse.ts";

/** The body of the HTTP answer to an `adaptiveCard/action` invoke. */
export type InvokeResponse =
  | { statusCode: 200; type: typeof CARD_CONTENT_TYPE; value: unknown }
  | { statusCode: 200; type: "application/vnd.microsoft.activity.message"; value: string };

const message = (text: string): InvokeResponse => ({
  statusCode: 200,
  type: "application/vnd.microsoft.activity.message",
  value: text,
});

export interface InteractivityDeps {
  ctx: Pick<AdapterContext, "answer">;
  views: { hasOpenCard(requestId: string): boolean };
  cards: CardStore;
  client: ConnectorClient;
  background: Background;
  log: Logger;
}

const whoOf = (origin: Origin) => ({
  platform: "teams",
  ...(origin.workspace ? { workspace: origin.workspace } : {}),
  userId: origin.userId,
  ...(origin.userName ? { userName: origin.userName } : {}),
});

/**
 * An Action.Execute click: the answer goes through the gateway (which
 * checks that the clicker is the person asked). The invoke's answer is the
 * card refreshed with the outcome, or, when refused, a message only the
 * clicker sees.
 */
export async function handleExecute(
  deps: InteractivityDeps,
  origin: Origin,
  answer: AnswerData,
): Promise<InvokeResponse> {
  let response: InvokeResponse = message("Answered.");
  await answerClick(
    deps,
    {
      requestId: answer.requestId,
      choice: answer.choice,
      ...(answer.label ? { label: answer.label } : {}),
      who: whoOf(origin),
    },
    {
      refused: async (reason) => {
        response = message(`⚠️ ${reason}`);
      },
      accepted: async (label) => {
        const shown = await deps.cards.get(answer.requestId);
        const line = cardText(
          outcomeMarkdown(label, answer.choice, origin.userName ?? origin.userId),
        );
        response = {
          statusCode: 200,
          type: CARD_CONTENT_TYPE,
          value: closedCard(shown?.body ?? [textBlock("")], line),
        };
      },
    },
  );
  return response;
}

/**
 * An Action.Submit click (a message whose value is the action's data): the
 * same answer; a refusal goes to the clicker's 1:1 chat when the card is in
 * a channel, and the card is closed by an update when no live view will.
 */
export async function handleSubmit(
  deps: InteractivityDeps & { tellPrivately(origin: Origin, text: string): Promise<void> },
  origin: Origin,
  ref: ConversationRef,
  answer: AnswerData,
): Promise<void> {
  await answerClick(
    deps,
    {
      requestId: answer.requestId,
      choice: answer.choice,
      ...(answer.label ? { label: answer.label } : {}),
      who: whoOf(origin),
    },
    {
      refused: async (reason) => {
        deps.background.run(
          () => deps.tellPrivately(origin, `⚠️ ${reason}`),
          "could not explain a refused click",
        );
      },
      closeCard: async (line) => {
        const shown = await deps.cards.get(answer.requestId);
        if (!shown) return;
        deps.background.run(
          () =>
            teamsCall(() =>
              deps.client.update(ref.serviceUrl, origin.channelId, shown.activityId, {
                type: "message",
                attachments: [attachmentOf(closedCard(shown.body, cardText(line)))],
              }),
            ),
          "could not close a Teams card",
        );
      },
    },
  );
}

/**
 * A click on the streaming reply's Stop action: the turn is stopped through
 * the gateway (which checks that the clicker may). The reply's next update
 * says it stopped and drops the actions; a refusal, or what left the queue,
 * is the invoke's answer (shown to the clicker alone), or for an
 * Action.Submit a message in the clicker's 1:1 chat.
 */
export async function handleStop(
  deps: {
    ctx: Pick<AdapterContext, "stop">;
    background: Background;
    tellPrivately(origin: Origin, text: string): Promise<void>;
  },
  origin: Origin,
  stop: StopData,
  invoke: boolean,
): Promise<InvokeResponse | undefined> {
  let told: string | undefined;
  const known = await stopClick(deps.ctx, stop.action, whoOf(origin), async (text) => {
    told = cardText(text);
  });
  if (!known) told = "⚠️ This button is not one of mine.";
  if (invoke) return message(told ?? "Stopping.");
  const text = told;
  if (text) deps.background.run(() => deps.tellPrivately(origin, text), "could not explain a stop");
  return undefined;
}
