import type { Update } from "grammy/types";
import type { InboundFile } from "../../../domain/messages.ts";
import type { Origin } from "../../../domain/origin.ts";

/**
 * What Telegram sends, read into what the adapter handles: an Update from a
 * webhook body, and a message classified (is it for the bot?) and turned
 * into an Origin.
 */

/** A webhook body that is an Update, or undefined (answered 400). */
export function parseUpdate(body: unknown): Update | undefined {
  const update = body as Update | null | undefined;
  return typeof update?.update_id === "number" ? update : undefined;
}

/** The fields of a Telegram Message the adapter reads. */
export interface TgMessage {
  message_id: number;
  message_thread_id?: number;
  is_topic_message?: boolean;
  from?: { id: number; is_bot: boolean; first_name: string; last_name?: string; username?: string };
  chat: { id: number; type: string; is_forum?: boolean };
  text?: string;
  caption?: string;
  entities?: { type: string; offset: number; length: number }[];
  caption_entities?: { type: string; offset: number; length: number }[];
  reply_to_message?: {
    message_id: number;
    from?: {
      id: number;
      is_bot?: boolean;
      first_name?: string;
      last_name?: string;
      username?: string;
    };
    forum_topic_created?: unknown;
    date?: number;
    text?: string;
    caption?: string;
  };
  /** Unix seconds. */
  date?: number;
  document?: { file_name?: string; mime_type?: string; file_size?: number };
  photo?: { file_size?: number }[];
}

/** What every Telegram file object carries. */
interface TgFileFields {
  file_id?: string;
  file_size?: number;
}

/** The attachments of a Telegram Message (what filesOfMessage reads). */
export interface TgMessageFiles {
  message_id: number;
  document?: TgFileFields & { file_name?: string; mime_type?: string };
  photo?: TgFileFields[];
  voice?: TgFileFields & { mime_type?: string };
  audio?: TgFileFields & { file_name?: string; mime_type?: string };
  video?: TgFileFields & { file_name?: string; mime_type?: string };
  video_note?: TgFileFields;
}

export type TgClassified =
  | { kind: "ignore"; reason: string }
  | {
      kind: "message";
      isPrivate: boolean;
      /** A group message that does not address the bot: taken only under the chat's ambient mode. */
      ambient?: boolean;
      /** The text for the agent: the bot's @username removed. */
      text: string;
      /** A command at the start of the message (`/settings`, `/start payload`). */
      command?: { name: string; args: string };
      /** Forum topic to reply in. */
      threadId?: number;
    };

/**
 * Decide whether a message is for the bot. Private chats: always. Groups: when
 * the bot is @mentioned, a command is addressed to it (or to no bot in
 * particular), or the message replies to one of the bot's messages; any
 * other group message is ambient (taken only under the chat's ambient mode).
 * With privacy mode on, Telegram only sends the bot the former.
 */
export function classifyMessage(
  msg: TgMessage,
  bot: { id: number; username: string },
): TgClassified {
  if (!msg.from) return { kind: "ignore", reason: "no sender" };
  if (msg.from.is_bot) return { kind: "ignore", reason: "a bot's message" };
  const raw = msg.text ?? msg.caption ?? "";
  const entities = msg.entities ?? msg.caption_entities ?? [];
  const me = `@${bot.username}`.toLowerCase();
  const isPrivate = msg.chat.type === "private";

  let command: { name: string; args: string } | undefined;
  let commandForOtherBot = false;
  const first = entities.find((e) => e.type === "bot_command" && e.offset === 0);
  if (first) {
    const [name = "", target] = raw.slice(1, first.length).split("@");
    if (target && `@${target}`.toLowerCase() !== me) commandForOtherBot = true;
    else command = { name: name.toLowerCase(), args: raw.slice(first.length).trim() };
  }
  const mentioned = entities.some(
    (e) => e.type === "mention" && raw.slice(e.offset, e.offset + e.length).toLowerCase() === me,
  );
  const reply = msg.reply_to_message;
  const repliesToBot = reply?.from?.id === bot.id && reply.forum_topic_created === undefined;
  if (commandForOtherBot && !mentioned && !repliesToBot)
    return { kind: "ignore", reason: "a command for another bot" };
  // With privacy mode on, Telegram sends none of these (docs/platforms/telegram.md).
  const ambient = !isPrivate && !(mentioned || command || repliesToBot);

  const text = raw
    .replace(new RegExp(`${escapeRegExp(me)}\\b`, "gi"), "")
    .replace(/[ \t]+/g, " ")
    .trim();
  const threadId =
    msg.is_topic_message && msg.message_thread_id !== undefined ? msg.message_thread_id : undefined;
  return {
    kind: "message",
    isPrivate,
    ...(ambient ? { ambient } : {}),
    text,
    ...(command ? { command } : {}),
    ...(threadId !== undefined ? { threadId } : {}),
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The attachments of a message; Telegram names only documents (and some audio and video). */
export function filesOfMessage(msg: TgMessageFiles): InboundFile[] {
  const id = msg.message_id;
  const photo = msg.photo?.at(-1); // the largest size
  const found: [TgFileFields | undefined, string, string | undefined, string | undefined][] = [
    [msg.document, "document", msg.document?.file_name, msg.document?.mime_type],
    [photo, `photo-${id}.jpg`, undefined, "image/jpeg"],
    [msg.voice, `voice-${id}.ogg`, undefined, msg.voice?.mime_type ?? "audio/ogg"],
    [msg.audio, `audio-${id}`, msg.audio?.file_name, msg.audio?.mime_type],
    [msg.video, `video-${id}.mp4`, msg.video?.file_name, msg.video?.mime_type ?? "video/mp4"],
    [msg.video_note, `video-note-${id}.mp4`, undefined, "video/mp4"],
  ];
  return found.flatMap(([f, fallback, name, mimeType]) =>
    f
      ? [
          {
            name: name ?? fallback,
            ...(mimeType ? { mimeType } : {}),
            ...(f.file_size !== undefined ? { size: f.file_size } : {}),
            ...(f.file_id ? { ref: f.file_id } : {}),
          },
        ]
      : [],
  );
}

export function displayNameOf(from: NonNullable<TgMessage["from"]>): string {
  return from.username ?? [from.first_name, from.last_name].filter(Boolean).join(" ");
}

/** Where a message came from and where its reply goes (a forum topic, when it was in one). */
export function originOf(
  msg: TgMessage & { from: NonNullable<TgMessage["from"]> },
  m: Extract<TgClassified, { kind: "message" }>,
  /** A named bot (`[platforms.telegram.bots.<id>]`): its conversations and people are its own. */
  botId = "",
): Origin {
  return {
    platform: "telegram",
    ...(botId ? { workspace: botId } : {}),
    channelId: String(msg.chat.id),
    userId: String(msg.from.id),
    userName: displayNameOf(msg.from),
    isDirect: m.isPrivate,
    messageRef: String(msg.message_id),
    ...(m.threadId !== undefined ? { threadId: String(m.threadId) } : {}),
  };
}
