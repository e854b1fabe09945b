/** chat.* and reactions.* methods. */

import {
  type ApiCall,
  Args,
  channelFor,
  existingMessage,
  installOf,
  isEmpty,
  type MethodSpec,
  newBotMessage,
  ownMessage,
  POST_MESSAGE,
  postTarget,
  readable,
  readContent,
  readMetadata,
  resolveThread,
  SlackApiError,
  type SlackBackend,
  snapshot,
  TIER_2,
  TIER_3,
  TIER_4,
} from "./api-support.ts";
import type { SlackChannel, SlackInstallation, SlackMessage } from "./types.ts";
import { messageJson, teamOf } from "./wire.ts";

const REACTION_NAME = /^[a-z0-9_+'-]+(::skin-tone-[2-6])?$/;

/** Text carried by chat.*Stream: markdown_text plus any markdown_text chunks. */
function streamText(args: Args): string {
  let text = args.str("markdown_text") ?? "";
  const chunks = args.json("chunks");
  if (Array.isArray(chunks)) {
    for (const chunk of chunks) {
      if (
        chunk &&
        typeof chunk === "object" &&
        (chunk as { type?: unknown }).type === "markdown_text"
      ) {
        text += String((chunk as { text?: unknown }).text ?? "");
      }
    }
  }
  if (text.length > 12_000) throw new SlackApiError("msg_too_long");
  return text;
}

/** The bot's message that chat.startStream opened, with the call's text appended. */
function appendToStream(
  call: ApiCall,
  emu: SlackBackend,
): { channel: SlackChannel; message: SlackMessage } {
  const channel = channelFor(emu, call, call.args.str("channel"));
  const message = ownMessage(emu, call, channel, call.args.str("ts"), "cant_update_message");
  if (message.streaming !== "in_progress")
    throw new SlackApiError("message_not_in_streaming_state");
  const text = streamText(call.args);
  snapshot(message);
  message.text += text;
  return { channel, message };
}

/** The message a reactions.* call points at, and the reaction name without colons. */
function reactionTarget(call: ApiCall, emu: SlackBackend): { message: SlackMessage; name: string } {
  const { args } = call;
  const channel = readable(emu, call, args.str("channel"));
  const name = args.str("name")?.replace(/^:|:$/g, "");
  if (!name || !REACTION_NAME.test(name)) throw new SlackApiError("invalid_name");
  return { message: existingMessage(emu, channel, args.str("timestamp")), name };
}

export const CHAT_METHODS: Record<string, MethodSpec> = {
  "chat.postMessage": {
    auth: "bot",
    rate: POST_MESSAGE,
    handler: (call, emu) => {
      const install = installOf(call);
      const { args } = call;
      const channel = postTarget(emu, call, args.str("channel"));
      const content = readContent(args);
      if (isEmpty(content)) throw new SlackApiError("no_text");
      const metadata = readMetadata(args);
      const threadTs = resolveThread(emu, channel.id, args.str("thread_ts"));
      const message = newBotMessage(emu, install, channel, {
        text: content.text ?? "",
        ...(content.blocks ? { blocks: content.blocks } : {}),
        ...(content.attachments ? { attachments: content.attachments } : {}),
        ...(metadata !== undefined ? { metadata } : {}),
        ...(threadTs ? { threadTs } : {}),
        mrkdwn: args.bool("mrkdwn") ?? true,
        replyBroadcast: Boolean(threadTs && args.bool("reply_broadcast")),
        ...customIdentity(install, args),
        postedVia: "chat.postMessage",
      });
      emu.echo("new", message);
      return { ok: true, channel: channel.id, ts: message.ts, message: messageJson(emu, message) };
    },
  },

  "chat.update": {
    auth: "bot",
    rate: TIER_3,
    handler: (call, emu) => {
      const { args } = call;
      const channel = channelFor(emu, call, args.str("channel"));
      const message = ownMessage(emu, call, channel, args.str("ts"), "cant_update_message");
      const content = readContent(args);
      if (isEmpty(content) && !message.blocks?.length && !message.attachments?.length) {
        throw new SlackApiError("no_text");
      }
      const metadata = readMetadata(args);
      const previous = messageJson(emu, message);
      snapshot(message);
      // Omitted blocks/attachments are kept, as on Slack; [] clears them.
      if (content.text !== undefined) message.text = content.text;
      else if (content.blocks) message.text = "";
      if (content.blocks) message.blocks = content.blocks.length ? content.blocks : undefined;
      if (content.attachments) {
        message.attachments = content.attachments.length ? content.attachments : undefined;
      }
      if (metadata !== undefined) message.metadata = metadata;
      message.editedTs = emu.world.clock.next();
      emu.echo("changed", message, previous);
      return {
        ok: true,
        channel: channel.id,
        ts: message.ts,
        text: message.text,
        message: messageJson(emu, message),
      };
    },
  },

  "chat.delete": {
    auth: "bot",
    rate: TIER_3,
    handler: (call, emu) => {
      const channel = channelFor(emu, call, call.args.str("channel"));
      const message = ownMessage(emu, call, channel, call.args.str("ts"), "cant_delete_message");
      const previous = messageJson(emu, message);
      message.deleted = true;
      emu.echo("deleted", message, previous);
      return { ok: true, channel: channel.id, ts: message.ts };
    },
  },

  "chat.postEphemeral": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const { args } = call;
      const channel = postTarget(emu, call, args.str("channel"));
      const userId = args.str("user");
      const user = userId ? emu.world.users.get(userId) : undefined;
      if (!userId || !user) throw new SlackApiError("user_not_found");
      const inChannel =
        channel.type === "im"
          ? channel.user === userId
          : (channel.members?.includes(userId) ?? true);
      if (!inChannel) throw new SlackApiError("user_not_in_channel");
      const content = readContent(args);
      if (isEmpty(content)) throw new SlackApiError("no_text");
      const messageTs = emu.world.clock.next();
      const threadTs = args.str("thread_ts");
      emu.world.ephemerals.push({
        channel: channel.id,
        user: userId,
        messageTs,
        text: content.text ?? "",
        ...(content.blocks ? { blocks: content.blocks } : {}),
        ...(threadTs ? { threadTs } : {}),
        via: "chat.postEphemeral",
        at: Date.now(),
      });
      return { ok: true, message_ts: messageTs };
    },
  },

  "chat.getPermalink": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const channel = channelFor(emu, call, call.args.str("channel"));
      const message = existingMessage(emu, channel, call.args.str("message_ts"));
      const team = teamOf(emu, channel.teamId);
      let permalink = `https://${team.domain}.slack.com/archives/${channel.id}/p${message.ts.replace(".", "")}`;
      if (message.threadTs && message.threadTs !== message.ts) {
        permalink += `?thread_ts=${message.threadTs}&cid=${channel.id}`;
      }
      return { ok: true, channel: channel.id, permalink };
    },
  },

  "chat.startStream": {
    auth: "bot",
    rate: TIER_3,
    handler: (call, emu) => {
      const install = installOf(call);
      const { args } = call;
      const channel = postTarget(emu, call, args.str("channel"));
      const threadTs = resolveThread(emu, channel.id, args.str("thread_ts"));
      if (!threadTs) {
        throw new SlackApiError("invalid_arguments", {
          response_metadata: { messages: ["[ERROR] missing required field: thread_ts"] },
        });
      }
      // Outside a DM Slack needs the person the stream is for.
      if (
        channel.type !== "im" &&
        !(args.str("recipient_user_id") && args.str("recipient_team_id"))
      )
        throw new SlackApiError("invalid_arguments", {
          response_metadata: {
            messages: ["[ERROR] recipient_user_id and recipient_team_id are required outside a DM"],
          },
        });
      const message = newBotMessage(emu, install, channel, {
        text: streamText(args),
        threadTs,
        streaming: "in_progress",
        ...customIdentity(install, args),
        postedVia: "chat.startStream",
      });
      return { ok: true, channel: channel.id, ts: message.ts };
    },
  },

  "chat.appendStream": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const { channel, message } = appendToStream(call, emu);
      return { ok: true, channel: channel.id, ts: message.ts };
    },
  },

  "chat.stopStream": {
    auth: "bot",
    rate: TIER_3,
    handler: (call, emu) => {
      const content = readContent(new Args({ blocks: call.args.raw.blocks }));
      const metadata = readMetadata(call.args);
      const { channel, message } = appendToStream(call, emu);
      if (content.blocks) message.blocks = content.blocks;
      if (metadata !== undefined) message.metadata = metadata;
      message.streaming = "completed";
      return { ok: true, channel: channel.id, ts: message.ts, message: messageJson(emu, message) };
    },
  },

  "reactions.add": {
    auth: "bot",
    rate: TIER_3,
    handler: (call, emu) => {
      const install = installOf(call);
      const { message, name } = reactionTarget(call, emu);
      let reaction = message.reactions.find((r) => r.name === name);
      if (reaction?.users.includes(install.botUserId)) throw new SlackApiError("already_reacted");
      if (!reaction) {
        if (message.reactions.length >= 50) throw new SlackApiError("too_many_reactions");
        reaction = { name, users: [] };
        message.reactions.push(reaction);
      }
      reaction.users.push(install.botUserId);
      return { ok: true };
    },
  },

  "reactions.remove": {
    auth: "bot",
    rate: TIER_2,
    handler: (call, emu) => {
      const install = installOf(call);
      const { message, name } = reactionTarget(call, emu);
      const reaction = message.reactions.find((r) => r.name === name);
      if (!reaction?.users.includes(install.botUserId)) throw new SlackApiError("no_reaction");
      reaction.users = reaction.users.filter((u) => u !== install.botUserId);
      if (reaction.users.length === 0)
        message.reactions = message.reactions.filter((r) => r !== reaction);
      return { ok: true };
    },
  },
};

/** `username` / `icon_url` count only with chat:write.customize; without it Slack posts as the app. */
function customIdentity(
  install: SlackInstallation,
  args: Args,
): { username?: string; iconUrl?: string } {
  if (!install.scopes.includes("chat:write.customize")) return {};
  const username = args.str("username");
  const iconUrl = args.str("icon_url");
  return { ...(username ? { username } : {}), ...(iconUrl ? { iconUrl } : {}) };
}
