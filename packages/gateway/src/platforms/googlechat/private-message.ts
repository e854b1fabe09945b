import type { chat_v1 } from "@googleapis/chat";
import { type ChatApi, gcCall } from "./client.ts";

/** Who a private message is for, and where: a space (and its thread), or the person's DM with the app. */
export interface PrivateTarget {
  space: string;
  /** `users/<id>`. */
  user: string;
  isDirect: boolean;
  thread?: string;
}

/**
 * A message only `to.user` sees, sent through the Chat API (so it never
 * rides on the HTTP answer to a signed request): in a space a private
 * message (privateMessageViewer, in the thread when there is one); in the
 * person's DM with the app a plain message, as Chat takes no private
 * messages there and the DM is theirs alone.
 */
export async function sendPrivately(
  api: ChatApi,
  to: PrivateTarget,
  body: Pick<chat_v1.Schema$Message, "text" | "cardsV2">,
): Promise<void> {
  const thread = !to.isDirect && to.thread ? to.thread : undefined;
  await gcCall(() =>
    api.spaces.messages.create({
      parent: to.space,
      ...(thread ? { messageReplyOption: "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD" } : {}),
      requestBody: {
        ...body,
        ...(to.isDirect ? {} : { privateMessageViewer: { name: to.user } }),
        ...(thread ? { thread: { name: thread } } : {}),
      },
    }),
  );
}
