import { Hono } from "hono";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { answererFor, authorizeFor } from "../access/permissions.ts";
import type { ApiToken } from "../access/tokens.ts";
import type { Conversations } from "../conversations/records.ts";
import type { Origin } from "../domain/origin.ts";
import { enumParam } from "../http/query.ts";
import { notFound } from "../http/refusals.ts";
import type { Stopper, TurnStops } from "../runtime/stops.ts";

/** What the stop routes use. */
export interface StopRouteDeps {
  conversations: Pick<Conversations, "getMessage" | "getConversation">;
  stops: Pick<TurnStops, "stop">;
}

/** `?queue=`: keep the messages queued behind the stopped turn (default), or drop them. */
const QUEUE = enumParam(["keep", "clear"], "keep");

/**
 * Stopping a turn: `POST /messages/:id/stop` (that message's turn; a queued
 * message is dropped) and `POST /conversations/:id/stop` (whatever runs
 * there). Answered once the stop is published, not when the turn has ended:
 * its event stream ends with an `error` event with code `turn_stopped`.
 */
export function stopRoutes(d: StopRouteDeps): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.post("/messages/:messageId/stop", stopMessage(d));
  r.post("/conversations/:conversationId/stop", stopConversation(d));
  return r;
}

/** Who stops, when `token` does: an admin token as the operator, others as the person they act for. */
function stopperFor(token: ApiToken, origin: Origin): Stopper {
  const answerer = answererFor(token, { origin });
  return { ...answerer, admin: answerer.admin ?? false };
}

function stopMessage(d: StopRouteDeps) {
  return endpoint("turns.stop", { queue: QUEUE }, async (c, { token, query }) => {
    const messageId = c.req.param("messageId") ?? "";
    const message = await d.conversations.getMessage(messageId);
    if (!message) throw notFound("no such message");
    authorizeFor(token, "turns.stop", message.origin, `message ${messageId}`);
    const outcome = await d.stops.stop({ messageId }, stopperFor(token, message.origin), {
      clearQueue: query.queue === "clear",
    });
    return c.json(outcome);
  });
}

function stopConversation(d: StopRouteDeps) {
  return endpoint("turns.stop", { queue: QUEUE }, async (c, { token, query }) => {
    const conversationId = c.req.param("conversationId") ?? "";
    const conversation = await d.conversations.getConversation(conversationId);
    if (!conversation) throw notFound("no such conversation");
    authorizeFor(token, "turns.stop", conversation.key, `conversation ${conversationId}`);
    const outcome = await d.stops.stop({ conversationId }, stopperFor(token, conversation.origin), {
      clearQueue: query.queue === "clear",
    });
    return c.json(outcome);
  });
}
