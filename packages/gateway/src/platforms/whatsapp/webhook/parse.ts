import type { Logger } from "pino";
import { z } from "zod";
import type { InboundFile } from "../../../domain/messages.ts";

/**
 * What Meta posts to the webhook (a "whatsapp_business_account"
 * notification), validated with zod and read into what the adapter handles:
 * the messages people sent to this phone number. Status updates and other
 * fields are acknowledged and ignored.
 */

const Id = z.string().min(1).max(256);
/** A person's WhatsApp id: their phone number in international format, digits only. */
const WaId = z.string().regex(/^\d{1,20}$/);

const Media = z.object({
  id: Id,
  mime_type: z.string().max(255).optional(),
  caption: z.string().max(4096).optional(),
  filename: z.string().max(255).optional(),
});

const Reply = z.object({ id: z.string().min(1).max(256), title: z.string().max(256) });

const WaMessage = z.object({
  from: WaId,
  id: Id,
  timestamp: z.string().regex(/^\d{1,12}$/),
  type: z.string().max(32),
  text: z.object({ body: z.string().max(65_536) }).optional(),
  interactive: z
    .object({
      type: z.string().max(32),
      button_reply: Reply.optional(),
      list_reply: Reply.extend({ description: z.string().max(256).optional() }).optional(),
    })
    .optional(),
  /** A quick-reply button of a template. */
  button: z
    .object({ text: z.string().max(256), payload: z.string().max(1024).optional() })
    .optional(),
  image: Media.optional(),
  document: Media.optional(),
  audio: Media.optional(),
  video: Media.optional(),
  sticker: Media.optional(),
  /** The message this one replies to (a card, for button replies). */
  context: z.object({ id: Id.optional(), from: z.string().max(32).optional() }).optional(),
});
export type WaMessage = z.infer<typeof WaMessage>;

const MessagesValue = z.object({
  messaging_product: z.literal("whatsapp"),
  metadata: z.object({ phone_number_id: z.string().max(64) }),
  contacts: z
    .array(z.object({ wa_id: WaId, profile: z.object({ name: z.string().max(256) }).optional() }))
    .max(1000)
    .optional(),
  messages: z.array(z.unknown()).max(1000).optional(),
  statuses: z.array(z.unknown()).max(1000).optional(),
});

/** A delivery status of a message the bot sent; only failures are read. */
const FailedStatus = z.object({
  id: Id,
  status: z.literal("failed"),
  errors: z
    .array(z.object({ code: z.number().int(), title: z.string().max(512).optional() }))
    .max(10)
    .default([]),
});

export const Notification = z.object({
  object: z.literal("whatsapp_business_account"),
  entry: z
    .array(
      z.object({
        id: z.string().max(64),
        changes: z.array(z.object({ field: z.string().max(64), value: z.unknown() })).max(1000),
      }),
    )
    .max(1000),
});
export type Notification = z.infer<typeof Notification>;

/** One thing a person sent to the bot's number. */
export type WaInbound =
  | {
      kind: "message";
      message: WaMessage;
      from: string;
      name?: string;
      /** The text for the agent (a caption for media). */
      text: string;
      files: InboundFile[];
    }
  | {
      kind: "click";
      message: WaMessage;
      from: string;
      name?: string;
      /** The button's or list row's id (what the card put there). */
      replyId: string;
      title: string;
    };

/**
 * The messages of a notification sent to `phoneNumberId`. Messages to other
 * numbers of the same app, and messages whose shape is not WhatsApp's, are
 * left out (logged): nothing in them can be answered from here.
 */
export function inboundOf(
  notification: Notification,
  phoneNumberId: string,
  log: Logger,
): WaInbound[] {
  const out: WaInbound[] = [];
  for (const entry of notification.entry) {
    for (const change of entry.changes) {
      if (change.field !== "messages") continue;
      const value = MessagesValue.safeParse(change.value);
      if (!value.success) {
        log.warn({ issues: value.error.issues.length }, "WhatsApp: an unreadable messages change");
        continue;
      }
      if (value.data.metadata.phone_number_id !== phoneNumberId) {
        log.debug("WhatsApp: a message for another phone number of this app; ignored");
        continue;
      }
      const names = new Map(
        (value.data.contacts ?? []).map((c) => [c.wa_id, c.profile?.name] as const),
      );
      logFailures(value.data.statuses ?? [], log);
      for (const raw of value.data.messages ?? []) {
        const parsed = WaMessage.safeParse(raw);
        if (!parsed.success) {
          log.warn({ issues: parsed.error.issues.length }, "WhatsApp: an unreadable message");
          continue;
        }
        const item = classify(parsed.data, names.get(parsed.data.from));
        if (item) out.push(item);
        else log.debug({ type: parsed.data.type }, "WhatsApp: a message the agent does not get");
      }
    }
  }
  return out;
}

/**
 * The Cloud API may accept a message and fail to deliver it later (the
 * person blocked the number, the window closed meanwhile: 131047); it says
 * so in a status. Nothing can be resent from here, so the operator is told.
 */
function logFailures(statuses: unknown[], log: Logger): void {
  for (const raw of statuses) {
    const failed = FailedStatus.safeParse(raw);
    if (!failed.success) continue;
    const [error] = failed.data.errors;
    log.warn(
      { messageId: failed.data.id, code: error?.code, title: error?.title },
      "WhatsApp could not deliver a message the bot sent",
    );
  }
}

const MEDIA = ["image", "document", "audio", "video", "sticker"] as const;

function classify(message: WaMessage, name: string | undefined): WaInbound | undefined {
  const who = { message, from: message.from, ...(name ? { name } : {}) };
  const reply = message.interactive?.button_reply ?? message.interactive?.list_reply;
  if (message.type === "interactive" && reply)
    return { kind: "click", ...who, replyId: reply.id, title: reply.title };
  if (message.type === "button" && message.button) {
    // A template's quick reply carries no request: it reads as the person's message.
    return { kind: "message", ...who, text: message.button.text, files: [] };
  }
  if (message.type === "text" && message.text)
    return { kind: "message", ...who, text: message.text.body.trim(), files: [] };
  for (const kind of MEDIA) {
    const media = message.type === kind ? message[kind] : undefined;
    if (!media) continue;
    const file: InboundFile = {
      name: media.filename ?? `${kind}${extensionOf(media.mime_type)}`,
      ...(media.mime_type ? { mimeType: media.mime_type.split(";")[0]?.trim() } : {}),
      // The media id: files.ts asks Graph for its URL when the turn starts.
      ref: media.id,
    };
    return { kind: "message", ...who, text: media.caption?.trim() ?? "", files: [file] };
  }
  return undefined;
}

function extensionOf(mime: string | undefined): string {
  const sub = mime?.split(";")[0]?.split("/")[1]?.trim();
  return sub && /^[a-z0-9.+-]{1,16}$/.test(sub) ? `.${sub.replace(/^(x-|vnd\.)/, "")}` : "";
}

/** A message the person typed as one of the bot's commands (`/settings`, `/help`), or undefined. */
export function commandOf(text: string): "settings" | "help" | undefined {
  const word = text.trim().toLowerCase();
  if (word === "/settings" || word === "settings") return "settings";
  if (word === "/help" || word === "/start") return "help";
  return undefined;
}
