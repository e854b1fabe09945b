import { type LobuConfig, LobuError, newId } from "@lobu/core";
import { type Context, Hono } from "hono";
import { z } from "zod";
import type { ApiEnv } from "../access/auth.ts";
import { endpoint } from "../access/endpoint.ts";
import { apiOrigin, authorizeFor } from "../access/permissions.ts";
import type { FileBlobs } from "../conversations/file-blobs.ts";
import type { Inbound } from "../conversations/inbound.ts";
import type { Conversations } from "../conversations/records.ts";
import { jsonBody } from "../http/errors.ts";
import { cursorParam, enumParam } from "../http/query.ts";
import { notFound } from "../http/refusals.ts";
import { streamMessageEvents } from "../http/sse.ts";
import type { StreamSlots } from "../http/stream-slots.ts";
import { streamHolder } from "./streams.ts";
import { isMultipart, multipartMessage, stageUploads } from "./uploads.ts";

const SendMessage = z.strictObject({
  /** The end user this message is from (any stable id in your system). */
  user: z.string().min(1).max(200),
  /** Conversation channel; one sandbox per (agent, user, channel). */
  channel: z.string().min(1).max(200).default("default"),
  text: z.string(),
  userName: z.string().max(200).optional(),
});

/** `?stream=` of POST …/messages: an explicit choice over the Accept header. */
const STREAM_FLAG = enumParam(["true", "false", "1", "0"], undefined);

function wantsStream(accept: string | undefined, flag: string | undefined): boolean {
  if (flag !== undefined) return flag === "true" || flag === "1";
  return (accept ?? "").includes("text/event-stream");
}

/** What the message routes use. */
export interface MessageRouteDeps {
  inbound: Pick<Inbound, "submit">;
  conversations: Pick<Conversations, "getMessage" | "readEvents">;
  /** Where uploads wait for their turn. */
  fileBlobs: Pick<FileBlobs, "put">;
  config: Pick<LobuConfig, "files">;
}

/**
 * Messages: send one to an agent (`POST /agents/:agentId/messages`, answered
 * at once or as its event stream), read one, and follow its events (SSE, with
 * resume). Open streams count against the caller's caps (`slots`).
 */
export function messageRoutes(d: MessageRouteDeps, slots: StreamSlots): Hono<ApiEnv> {
  const r = new Hono<ApiEnv>();
  r.post("/agents/:agentId/messages", sendMessage(d, slots));
  r.get("/messages/:messageId", readMessage(d));
  r.get("/messages/:messageId/events", followEvents(d, slots));
  return r;
}

function sendMessage(d: MessageRouteDeps, slots: StreamSlots) {
  return endpoint("messages.send", { stream: STREAM_FLAG }, async (c, { token, query }) => {
    const agentId = c.req.param("agentId") ?? "";
    // JSON, or multipart/form-data with the same fields and `file` parts (docs/files.md).
    const { body, files } = isMultipart(c)
      ? await multipartMessage(c, SendMessage, d.config.files)
      : { body: await jsonBody(c, SendMessage), files: [] };
    // Client and user tokens speak only for people in their namespace (permissions.ts).
    const origin = apiOrigin(token, body);
    const idempotencyKey = idempotencyKeyOf(c);
    const stream = wantsStream(c.req.header("accept"), query.stream);
    // Take the stream slot first: over the cap, nothing is queued (429, retry later).
    const release = stream ? slots.acquire(streamHolder(c)) : undefined;
    let result: Awaited<ReturnType<MessageRouteDeps["inbound"]["submit"]>>;
    try {
      const staged = files.length
        ? await stageUploads(d.fileBlobs, origin, files, d.config.files.download_ttl)
        : [];
      result = await d.inbound.submit({
        agentId,
        origin,
        text: body.text,
        ...(staged.length ? { files: staged } : {}),
        eventId: idempotencyKey ? `idem:${token.id}:${idempotencyKey}` : newId("evt"),
      });
    } catch (err) {
      release?.();
      throw err;
    }
    const messageId = result.messageId!;
    if (release) {
      c.header("x-lobu-message-id", messageId);
      c.header("x-lobu-conversation-id", result.conversationId ?? "");
      return streamMessageEvents(c, d.conversations, messageId, { onClose: release });
    }
    return c.json(
      {
        messageId,
        conversationId: result.conversationId,
        duplicate: result.duplicate,
        status: "queued",
        eventsUrl: `/api/v1/messages/${messageId}/events`,
      },
      202,
    );
  });
}

/** The request's Idempotency-Key header, if any (1 to 200 characters). */
function idempotencyKeyOf(c: Context): string | undefined {
  const key = c.req.header("idempotency-key");
  if (key !== undefined && (key.length === 0 || key.length > 200))
    throw new LobuError("invalid_request", "Idempotency-Key must be 1 to 200 characters");
  return key;
}

/** The message, if the caller may read it (404 unknown, 403 someone else's). */
async function readableMessage(d: MessageRouteDeps, c: Context<ApiEnv>, messageId: string) {
  const rec = await d.conversations.getMessage(messageId);
  if (!rec) throw notFound("no such message");
  authorizeFor(c.get("token"), "messages.read", rec.origin, `message ${messageId}`);
  return rec;
}

function readMessage(d: MessageRouteDeps) {
  return endpoint("messages.read", {}, async (c) =>
    c.json(await readableMessage(d, c, c.req.param("messageId") ?? "")),
  );
}

function followEvents(d: MessageRouteDeps, slots: StreamSlots) {
  return endpoint("messages.read", { after: cursorParam() }, async (c, { query }) => {
    const messageId = c.req.param("messageId") ?? "";
    await readableMessage(d, c, messageId);
    // Check the cursor before the stream starts: afterwards an error can't be a 400.
    const header = c.req.header("last-event-id");
    if (header !== undefined && cursorParam().parse(header) === undefined)
      // The code clients already know for a bad cursor (the store's).
      throw new LobuError(
        "store_invalid_cursor",
        `Last-Event-ID "${header.slice(0, 80)}" is not valid`,
        {
          status: 400,
          hint: `Last-Event-ID must be ${cursorParam().expected}: the id of the last event you received.`,
        },
      );
    const release = slots.acquire(streamHolder(c));
    return streamMessageEvents(c, d.conversations, messageId, {
      after: header ?? query.after,
      onClose: release,
    });
  });
}
