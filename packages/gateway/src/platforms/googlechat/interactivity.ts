import type { chat_v1 } from "@googleapis/chat";
import type { Logger } from "pino";
import { z } from "zod";
import type { Origin } from "../../domain/origin.ts";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";
import { answerClick, stopClick } from "../shared/interactivity.ts";
import {
  ANSWER_FUNCTION,
  dialogInputKey,
  linkCard,
  SHOW_INPUT_FUNCTION,
  STOP_FUNCTION,
  textDialog,
} from "./cards.ts";
import { MESSAGE_LIMIT, toChat } from "./format.ts";
import type { PrivateTarget } from "./private-message.ts";
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
  ctx: Pick<AdapterContext, "answer" | "settingsLink" | "state" | "stop">;
  views: { hasOpenCard(requestId: string): boolean };
  log: Logger;
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
  const { requestId, choice, action } = clickParameters(event);
  if (user && fn === SHOW_INPUT_FUNCTION && requestId) return showInput(deps, event, requestId);
  if (user && fn === STOP_FUNCTION && action) return stop(deps, event, user, action);
  if (!user || fn !== ANSWER_FUNCTION || !requestId || choice === undefined)
    return notice(event, user, "⚠️ This button is not one of mine.");
  let response: ChatResponse = {};
  await answerClick(
    deps,
    {
      requestId,
      choice,
      who: whoOf(user),
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

/**
 * A Stop button on the streaming reply: the turn is stopped through the
 * gateway (which checks that the clicker may). The reply's next update says
 * it stopped and drops the buttons; a refusal, or what left the queue, is a
 * private message to the clicker.
 */
async function stop(
  deps: InteractivityDeps,
  event: ChatEvent,
  user: ChatUser,
  action: string,
): Promise<ChatResponse> {
  let response: ChatResponse = {};
  const known = await stopClick(deps.ctx, action, whoOf(user), async (text) => {
    response = notice(event, user, toChat(text)[0] ?? text);
  });
  return known ? response : notice(event, user, "⚠️ This button is not one of mine.");
}

const whoOf = (user: ChatUser) => ({
  platform: "googlechat",
  userId: userIdOf(user),
  ...(user.displayName ? { userName: user.displayName } : {}),
});

const KeptInput = z.object({ space: z.string(), text: z.string() });

/**
 * "Show full input" on an approval card: the whole input in a dialog, in the
 * space the card is in (anyone there can read the card; nobody elsewhere).
 */
async function showInput(
  deps: InteractivityDeps,
  event: ChatEvent,
  requestId: string,
): Promise<ChatResponse> {
  const key = dialogInputKey(requestId);
  const raw = await deps.ctx.state.get(key);
  const kept =
    raw === null
      ? undefined
      : readRecord(
          KeptInput,
          raw,
          { record: "Google Chat approval input", key },
          deps.log,
          "the input is not shown",
        );
  if (!kept || kept.space !== event.space?.name)
    return notice(event, event.user, "⚠️ This input is no longer available.");
  return { actionResponse: textDialog("Full input waiting for approval", kept.text) };
}

function notice(event: ChatEvent, user: ChatUser | undefined, text: string): ChatResponse {
  const message: ChatResponse = { actionResponse: { type: "NEW_MESSAGE" }, text };
  return user ? privately(event, user, message) : message;
}

export interface SettingsCommandDeps {
  ctx: Pick<AdapterContext, "settingsLink">;
  log: Logger;
  /** A message only the person sees, through the Chat API (private-message.ts). */
  sendPrivately(to: PrivateTarget, body: Pick<ChatResponse, "text" | "cardsV2">): Promise<void>;
}

/**
 * `/lobu`: the person's settings link, in a message only they see, sent
 * through the Chat API. The HTTP answer carries no link (it is `{}`): that
 * body goes back to whoever posted the signed request, and a link there
 * would be a claim code for anyone who captured or replays it.
 */
export async function handleSettingsCommand(
  deps: SettingsCommandDeps,
  event: ChatEvent,
): Promise<ChatResponse> {
  const { user, space } = event;
  if (!user || !space) return {};
  const isDirect = isDirectSpace(space);
  const origin: Origin = {
    platform: "googlechat",
    channelId: space.name,
    userId: userIdOf(user),
    ...(user.displayName ? { userName: user.displayName } : {}),
    isDirect,
  };
  const thread = event.message?.thread?.name;
  try {
    const url = await deps.ctx.settingsLink(origin);
    await deps.sendPrivately(
      { space: space.name, user: user.name, isDirect, ...(thread ? { thread } : {}) },
      {
        text: "Your personal settings for this agent (API keys, connected accounts, approvals). Only you see this; the link works once.",
        cardsV2: linkCard("lobu-settings", "Open settings", url),
      },
    );
  } catch (err) {
    deps.log.warn({ err }, "could not send the /lobu settings link");
    return notice(event, user, "⚠️ Could not send your settings link. Try `/lobu` again.");
  }
  return {};
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
