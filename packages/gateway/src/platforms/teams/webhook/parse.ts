import { z } from "zod";
import type { InboundFile } from "../../../domain/messages.ts";
import type { Origin } from "../../../domain/origin.ts";
import type { SharedFileRef } from "../graph-files.ts";

/**
 * Bot Framework activities as Teams posts them, validated with zod and read
 * into what the adapter handles: messages (in a 1:1 chat, a group chat, or a
 * channel thread), Action.Submit clicks (a message whose `value` is the
 * action's data) and Action.Execute clicks (an `adaptiveCard/action` invoke).
 */

const Id = z.string().min(1).max(512);
const Account = z.object({
  id: Id,
  name: z.string().max(256).optional(),
  aadObjectId: z.string().max(64).optional(),
});

export const Activity = z.object({
  type: z.string().max(64),
  id: Id,
  channelId: z.string().max(64),
  serviceUrl: z.string().max(2048),
  timestamp: z.string().max(64).optional(),
  from: Account,
  recipient: Account.optional(),
  conversation: z.object({
    id: Id,
    conversationType: z.enum(["personal", "groupChat", "channel"]).optional(),
    tenantId: z.string().max(64).optional(),
    isGroup: z.boolean().optional(),
  }),
  text: z.string().max(40_000).optional(),
  textFormat: z.string().max(32).optional(),
  replyToId: z.string().max(512).optional(),
  name: z.string().max(128).optional(),
  value: z.unknown().optional(),
  attachments: z
    .array(
      z.object({ contentType: z.string().max(255), name: z.string().max(1024).optional() }).loose(),
    )
    .max(20)
    .default([]),
  entities: z
    .array(z.object({ type: z.string().max(64) }).loose())
    .max(50)
    .default([]),
  channelData: z
    .object({
      tenant: z.object({ id: z.string().max(64) }).optional(),
      /** In a channel: the team (its Microsoft 365 group id names it in Graph) and the channel. */
      team: z
        .object({ aadGroupId: z.string().max(64).optional() })
        .loose()
        .optional(),
      channel: z
        .object({ id: z.string().max(512) })
        .loose()
        .optional(),
    })
    .loose()
    .optional(),
});
export type Activity = z.infer<typeof Activity>;

/** What a card's answer action carries as its data (Action.Submit and Action.Execute alike). */
export const AnswerData = z.object({
  lobu: z.literal("answer"),
  requestId: z.string().min(1).max(256),
  choice: z.string().min(1).max(256),
  label: z.string().max(256).optional(),
});
export type AnswerData = z.infer<typeof AnswerData>;

export const ANSWER_VERB = "lobu.answer";
/** The verb of the streaming reply's Stop actions. */
export const STOP_VERB = "lobu.stop";

/** What a Stop action carries: the Stop button's id (shared/stop.ts), naming the turn's message. */
export const StopData = z.object({ lobu: z.literal("stop"), action: z.string().min(1).max(100) });
export type StopData = z.infer<typeof StopData>;

const ExecuteValue = z.object({
  action: z.object({
    type: z.literal("Action.Execute"),
    verb: z.string().max(128),
    data: z.unknown(),
  }),
});

export type Inbound =
  | { kind: "message"; text: string; files: InboundFile[] }
  | { kind: "submit"; answer: AnswerData }
  | { kind: "execute"; answer: AnswerData }
  | { kind: "stop"; stop: StopData; invoke: boolean }
  | { kind: "ignore"; reason: string };

/** What an activity is for the adapter. */
export function classify(activity: Activity): Inbound {
  if (activity.type === "invoke") {
    if (activity.name !== "adaptiveCard/action")
      return { kind: "ignore", reason: `invoke ${activity.name}` };
    const value = ExecuteValue.safeParse(activity.value);
    if (value.success && value.data.action.verb === STOP_VERB) {
      const stop = StopData.safeParse(value.data.action.data);
      return stop.success
        ? { kind: "stop", stop: stop.data, invoke: true }
        : { kind: "ignore", reason: "an unknown stop action" };
    }
    const answer =
      value.success && value.data.action.verb === ANSWER_VERB
        ? AnswerData.safeParse(value.data.action.data)
        : undefined;
    return answer?.success
      ? { kind: "execute", answer: answer.data }
      : { kind: "ignore", reason: "an unknown card action" };
  }
  if (activity.type !== "message") return { kind: "ignore", reason: activity.type };
  if (activity.value !== undefined) {
    const stop = StopData.safeParse(activity.value);
    if (stop.success) return { kind: "stop", stop: stop.data, invoke: false };
    const answer = AnswerData.safeParse(activity.value);
    return answer.success
      ? { kind: "submit", answer: answer.data }
      : { kind: "ignore", reason: "an unknown card submit" };
  }
  return { kind: "message", text: plainText(activity.text ?? ""), files: filesOf(activity) };
}

/** A file a person sent in a 1:1 chat (uploaded to their OneDrive; `downloadUrl` is pre-authenticated). */
export const FILE_DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info";
const DownloadInfo = z.object({ downloadUrl: z.string().max(4000) });

/**
 * The files of a message, with a `ref` teams/files.ts understands:
 * `download:<url>` (a 1:1 file's pre-authenticated download URL, fetched
 * without the bot's token) or `bot:<url>` (an inline image on the Bot
 * Connector, fetched with it) or `graph:<json>` (a file shared in a channel
 * or group chat: a `reference` to SharePoint/OneDrive, read through Graph,
 * with the tenant and the sender's Entra id it is checked against). Other
 * attachments with a name come without a ref: they are refused with a
 * message. Cards and the HTML copy of the text are not files.
 */
export function filesOf(activity: Activity): InboundFile[] {
  return activity.attachments.flatMap((a, n): InboundFile[] => {
    const url = typeof a.contentUrl === "string" ? a.contentUrl : undefined;
    if (a.contentType === FILE_DOWNLOAD_INFO) {
      const info = DownloadInfo.safeParse(a.content);
      return [
        {
          name: a.name ?? `file-${n + 1}`,
          ...(info.success ? { ref: `download:${info.data.downloadUrl}` } : {}),
        },
      ];
    }
    if (a.contentType.startsWith("image/") && url)
      return [
        {
          name:
            a.name ?? `image-${n + 1}.${a.contentType.slice(6).replace(/[^a-z0-9]/g, "") || "png"}`,
          mimeType: a.contentType,
          ref: `bot:${url}`,
        },
      ];
    if (a.contentType === "reference" && url) {
      const tenant = tenantOf(activity);
      const sender = activity.from.aadObjectId;
      return [
        {
          name: a.name ?? `file-${n + 1}`,
          ...(tenant && sender
            ? { ref: `graph:${JSON.stringify({ url, tenant, sender } satisfies SharedFileRef)}` }
            : {}),
        },
      ];
    }
    if (a.contentType === "text/html" || a.contentType.startsWith("application/vnd.microsoft.card"))
      return [];
    return a.name ? [{ name: a.name }] : [];
  });
}

/**
 * Teams' message text without the bot's @mention and the little HTML it
 * carries (mentions are `<at>Name</at>`, line breaks `<br>`).
 */
export function plainText(text: string): string {
  return text
    .replace(/<at>[^<]{0,256}<\/at>/g, "")
    .replace(/<br\s*\/?>/gi, "\n")
    .replace(/<\/?(p|div|span|b|i|strong|em)(\s[^>]*)?>/gi, "")
    .replace(/&nbsp;/g, " ")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&")
    .replace(/[ \t]+/g, " ")
    .trim();
}

/** The team (group id) and channel of a channel activity, as Graph names them; undefined elsewhere. */
export function graphChannelOf(activity: Activity): { team: string; channel: string } | undefined {
  const team = activity.channelData?.team?.aadGroupId;
  const channel = activity.channelData?.channel?.id;
  return activity.conversation.conversationType === "channel" && team && channel
    ? { team, channel }
    : undefined;
}

/** The tenant an activity comes from (conversation or channel data). */
export function tenantOf(activity: Activity): string | undefined {
  return activity.conversation.tenantId ?? activity.channelData?.tenant?.id;
}

/**
 * Where an activity came from. A channel thread is its own conversation
 * (`<channel>;messageid=<root>`), so the conversation id is the channel id
 * and replies land in the thread; the root message is the thread id. People
 * are scoped by tenant (`teams:<tenant>:<user>`).
 */
export function originOf(activity: Activity): Origin {
  const conversation = activity.conversation;
  const type = conversation.conversationType ?? (conversation.isGroup ? "groupChat" : "personal");
  const thread = /;messageid=(\d{1,32})$/.exec(conversation.id)?.[1];
  const tenant = tenantOf(activity);
  return {
    platform: "teams",
    ...(tenant ? { workspace: tenant } : {}),
    channelId: conversation.id,
    ...(thread ? { threadId: thread } : {}),
    userId: activity.from.id,
    ...(activity.from.name ? { userName: activity.from.name } : {}),
    isDirect: type === "personal",
    messageRef: activity.id,
  };
}

/** A message the person typed as one of the bot's commands, or undefined. */
export function commandOf(text: string): "settings" | "help" | undefined {
  const word = text.trim().toLowerCase();
  if (word === "/settings" || word === "settings") return "settings";
  if (word === "/help" || word === "help") return "help";
  return undefined;
}
