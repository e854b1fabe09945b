import type { chat_v1 } from "@googleapis/chat";
import type { Origin } from "../../domain/origin.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { answerClick } from "../shared/interactivity.ts";
import { ANSWER_FUNCTION, linkCard } from "./cards.ts";
import { MESSAGE_LIMIT, toChat } from "./format.ts";
import {
  type ChatEvent,
  type ChatUser,
  clickParameters,
  isDirectSpace,
  userIdOf,
} from "./webhook/parse.ts";

/** The synchronous answer to an event: a message (or an update of the clicked one), or nothing (`{}`). */
export type ChatResponse = chat_v1.Schema$Message;

/**
 * A message only `user` sees: in a space, Chat's private message
 * (privateMessageViewer); a DM is private already.
 */
export function privately(event: ChatEvent, user: ChatUser, message: ChatResponse): ChatResponse {
  const inDm = event.space ? isDirectSpace(event.space) : true;
  return inDm ? message : { ...message, privateMessageViewer: { name: user.name } };
}

export interface InteractivityDeps {
  ctx: Pick<AdapterContext, "answer" | "settingsLink">;
  views: { hasOpenCard(requestId: string): boolean };
}

/**
 * CARD_CLICKED on a request card: the answer goes through the gateway (which
 * checks who may answer); a refusal is told to the clicker alone (a private
 * message); when no live view here will close the card, the answer closes it
 * in place (UPDATE_MESSAGE).
 */
export async function handleClick(
  deps: InteractivityDeps,
  event: ChatEvent,
): Promise<ChatResponse> {
  const user = event.user;
  const fn = event.common?.invokedFunction ?? event.action?.actionMethodName;
  const { requestId, choice } = clickParameters(event);
  if (!user || fn !== ANSWER_FUNCTION || !requestId || choice === undefined)
    return notice(event, user, "⚠️ This button is not one of mine.");
  let response: ChatResponse = {};
  await answerClick(
    deps,
    {
      requestId,
      choice,
      who: {
        platform: "googlechat",
        userId: userIdOf(user),
        ...(user.displayName ? { userName: user.displayName } : {}),
      },
    },
    {
      refused: async (reason) => {
        response = notice(event, user, `⚠️ ${reason}`);
      },
      closeCard: async (line) => {
        const text = `${event.message?.text ?? ""}\n\n${toChat(line)[0] ?? ""}`.trim();
        response = {
          actionResponse: { type: "UPDATE_MESSAGE" },
          text: text.slice(0, MESSAGE_LIMIT),
          cardsV2: [],
        };
      },
    },
  );
  return response;
}

function notice(event: ChatEvent, user: ChatUser | undefined, text: string): ChatResponse {
  const message: ChatResponse = { actionResponse: { type: "NEW_MESSAGE" }, text };
  return user ? privately(event, user, message) : message;
}

/** `/lobu`: the person's settings link, in a message only they see. */
export async function handleSettingsCommand(
  deps: Pick<InteractivityDeps, "ctx">,
  event: ChatEvent,
): Promise<ChatResponse> {
  const { user, space } = event;
  if (!user || !space) return {};
  const origin: Origin = {
    platform: "googlechat",
    channelId: space.name,
    userId: userIdOf(user),
    ...(user.displayName ? { userName: user.displayName } : {}),
    isDirect: isDirectSpace(space),
  };
  const url = await deps.ctx.settingsLink(origin);
  return privately(event, user, {
    text: "Your personal settings for this agent (API keys, connected accounts, approvals). Only you see this; the link works once.",
    cardsV2: linkCard("lobu-settings", "Open settings", url),
  });
}

/** ADDED_TO_SPACE: how to talk to the app. */
export function welcome(event: ChatEvent): ChatResponse {
  const direct = event.space ? isDirectSpace(event.space) : true;
  return {
    text: direct
      ? "Hi! Write to me here and your agent answers. `/lobu` opens your personal settings."
      : "Thanks for adding me. Mention me in a thread and your agent answers there; `/lobu` opens your personal settings (only you see the link).",
  };
}
