import { z } from "zod";
import type { InboundFile } from "../../../domain/messages.ts";
import type { Origin } from "../../../domain/origin.ts";

/**
 * What Google Chat posts to the HTTP endpoint: the Chat API interaction
 * event (developers.google.com/workspace/chat/api/reference/rest/v1/Event),
 * the format of Chat apps configured in the Chat API (not the Workspace
 * add-on format). `type` says what happened: MESSAGE, ADDED_TO_SPACE,
 * REMOVED_FROM_SPACE, CARD_CLICKED, APP_COMMAND (a slash command in the
 * newer form).
 */

const Resource = (prefix: string) =>
  z.string().regex(new RegExp(`^${prefix}/[A-Za-z0-9_.@-]{1,128}$`), `a ${prefix}/… name`);

const User = z.object({
  name: Resource("users"),
  displayName: z.string().max(200).optional(),
  type: z.string().max(40).optional(),
});
export type ChatUser = z.infer<typeof User>;

const Space = z.object({
  name: Resource("spaces"),
  /** Deprecated form: "DM" or "ROOM". */
  type: z.string().max(40).optional(),
  spaceType: z.string().max(40).optional(),
  singleUserBotDm: z.boolean().optional(),
});

const MessageName = z
  .string()
  .regex(/^spaces\/[A-Za-z0-9_-]{1,128}\/messages\/[A-Za-z0-9_.-]{1,128}$/);

const Attachment = z.object({
  contentName: z.string().max(1024).optional(),
  contentType: z.string().max(255).optional(),
  /** Uploaded content: what media.download takes. Drive files have driveDataRef instead. */
  attachmentDataRef: z.object({ resourceName: z.string().max(4000).optional() }).optional(),
});

const Message = z.object({
  name: MessageName,
  text: z.string().max(40_000).default(""),
  /** The text without the app's @mention. */
  argumentText: z.string().max(40_000).optional(),
  thread: z.object({ name: z.string().max(300) }).optional(),
  slashCommand: z.object({ commandId: z.union([z.string(), z.number()]) }).optional(),
  attachment: z.array(Attachment).max(20).default([]),
});

export const ChatEvent = z.object({
  type: z.string().max(40),
  eventTime: z.string().max(40).optional(),
  user: User.optional(),
  space: Space.optional(),
  message: Message.optional(),
  /** A card click: the button's function and its parameters. */
  common: z
    .object({
      invokedFunction: z.string().max(200).optional(),
      parameters: z.record(z.string(), z.string().max(1000)).optional(),
    })
    .optional(),
  action: z
    .object({
      actionMethodName: z.string().max(200).optional(),
      parameters: z
        .array(z.object({ key: z.string().max(100), value: z.string().max(1000) }))
        .max(20)
        .optional(),
    })
    .optional(),
  appCommandMetadata: z
    .object({
      appCommandId: z.union([z.string(), z.number()]),
      appCommandType: z.string().max(40).optional(),
    })
    .optional(),
  isDialogEvent: z.boolean().optional(),
});
export type ChatEvent = z.infer<typeof ChatEvent>;
export type ChatMessageEvent = ChatEvent & {
  message: NonNullable<ChatEvent["message"]>;
  space: NonNullable<ChatEvent["space"]>;
  user: ChatUser;
};

/** A direct message between one person and the app. */
export function isDirectSpace(space: NonNullable<ChatEvent["space"]>): boolean {
  return space.spaceType === "DIRECT_MESSAGE" || space.type === "DM" || !!space.singleUserBotDm;
}

/** `users/123` → `123`: people are keyed by their Chat user id (the same in every space). */
export function userIdOf(user: ChatUser): string {
  return user.name.slice("users/".length);
}

/** The command id of a slash command, in either form (MESSAGE with slashCommand, or APP_COMMAND). */
export function commandIdOf(event: ChatEvent): string | undefined {
  const id = event.message?.slashCommand?.commandId ?? event.appCommandMetadata?.appCommandId;
  return id === undefined ? undefined : String(id);
}

/** What a card button carried: its parameters, in either the current or the deprecated field. */
export function clickParameters(event: ChatEvent): Record<string, string> {
  if (event.common?.parameters) return event.common.parameters;
  return Object.fromEntries((event.action?.parameters ?? []).map((p) => [p.key, p.value]));
}

/** The person's text for the agent: without the @mention (Chat gives it as argumentText). */
export function messageTextOf(event: ChatMessageEvent): string {
  return (event.message.argumentText ?? event.message.text).trim();
}

export function filesOf(event: ChatMessageEvent): InboundFile[] {
  return event.message.attachment.map((a) => ({
    name: a.contentName ?? "attachment",
    ...(a.contentType ? { mimeType: a.contentType } : {}),
    ...(a.attachmentDataRef?.resourceName ? { ref: a.attachmentDataRef.resourceName } : {}),
  }));
}

/**
 * Where a message came from. In a space the conversation is the thread
 * (replies go to it); a direct message is one conversation.
 */
export function originOf(event: ChatMessageEvent): Origin {
  const direct = isDirectSpace(event.space);
  const thread = event.message.thread?.name;
  return {
    platform: "googlechat",
    channelId: event.space.name,
    ...(!direct && thread ? { threadId: thread } : {}),
    userId: userIdOf(event.user),
    ...(event.user.displayName ? { userName: event.user.displayName } : {}),
    isDirect: direct,
    messageRef: event.message.name,
  };
}
