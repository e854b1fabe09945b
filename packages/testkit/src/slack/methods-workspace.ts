/** auth.*, conversations.*, users.*, files.*, views.*, assistant.*, apps.* and oauth.v2.access. */
import { randomBytes } from "node:crypto";
import { extOf, mimeFor } from "../platform-kit/mime.ts";
import {
  type ApiCall,
  type Args,
  channelFor,
  historyReadable,
  inRange,
  installOf,
  type MethodSpec,
  MINUTE,
  newBotMessage,
  page,
  postTarget,
  readable,
  readContent,
  resolveThread,
  SlackApiError,
  type SlackBackend,
  TIER_3,
  TIER_4,
} from "./api-support.ts";
import { checkBlocks } from "./blocks.ts";
import type { SlackAssistantThread, SlackChannel, SlackFile, SlackView } from "./types.ts";
import { channelJson, fileJson, messageJson, userJson } from "./wire.ts";

function viewJson(emu: SlackBackend, record: SlackView): Record<string, unknown> {
  const view = record.view;
  return {
    id: record.id,
    team_id: record.teamId,
    type: view.type,
    blocks: view.blocks ?? [],
    private_metadata: view.private_metadata ?? "",
    callback_id: view.callback_id ?? "",
    state: { values: {} },
    hash: `${Math.floor(record.at / 1000)}.${randomBytes(4).toString("hex")}`,
    title: view.title ?? null,
    clear_on_close: view.clear_on_close ?? false,
    notify_on_close: view.notify_on_close ?? false,
    close: view.close ?? null,
    submit: view.submit ?? null,
    previous_view_id: null,
    root_view_id: record.id,
    app_id: emu.appId,
    external_id: view.external_id ?? "",
    app_installed_team_id: record.teamId,
  };
}

/** view argument checks shared by views.*: Slack reports schema failures as invalid_arguments. */
function readView(args: Args, expected: "modal" | "home" | "any"): Record<string, unknown> {
  const view = args.json("view");
  if (typeof view !== "object" || view === null || Array.isArray(view)) {
    throw new SlackApiError("invalid_arguments", {
      response_metadata: { messages: ["[ERROR] missing required field: view"] },
    });
  }
  const v = view as Record<string, unknown>;
  const messages: string[] = [];
  if (expected !== "any" && v.type !== expected) {
    messages.push(`[ERROR] must be ${expected} [json-pointer:/view/type]`);
  }
  if (v.type === "modal") {
    const title = v.title as { type?: unknown; text?: unknown } | undefined;
    if (title?.type !== "plain_text" || typeof title.text !== "string") {
      messages.push("[ERROR] missing required field: title [json-pointer:/view]");
    } else if (title.text.length > 24) {
      messages.push("[ERROR] must be less than 25 characters [json-pointer:/view/title/text]");
    }
  }
  const check = checkBlocks(v.blocks ?? [], 100);
  if (!check.ok) {
    if (check.errors.length === 0)
      messages.push("[ERROR] must be an array [json-pointer:/view/blocks]");
    for (const e of check.errors)
      messages.push(`[ERROR] ${e.replace("json-pointer:", "json-pointer:/view")}`);
  }
  if (messages.length > 0) {
    throw new SlackApiError("invalid_arguments", { response_metadata: { messages } });
  }
  return v;
}

function recordView(
  emu: SlackBackend,
  call: ApiCall,
  method: SlackView["method"],
  view: Record<string, unknown>,
  extra: { userId?: string; triggerId?: string; id?: string },
): Record<string, unknown> {
  const record: SlackView = {
    id: extra.id ?? emu.world.ids.next("V"),
    teamId: installOf(call).teamId,
    method,
    view,
    at: Date.now(),
    ...(extra.userId ? { userId: extra.userId } : {}),
    ...(extra.triggerId ? { triggerId: extra.triggerId } : {}),
  };
  emu.views.push(record);
  return { ok: true, view: viewJson(emu, record) };
}

function useTrigger(emu: SlackBackend, call: ApiCall): string {
  const triggerId = call.args.str("trigger_id");
  const trigger = triggerId ? emu.triggers.get(triggerId) : undefined;
  if (!triggerId || !trigger || trigger.teamId !== installOf(call).teamId) {
    throw new SlackApiError("invalid_trigger_id");
  }
  if (Date.now() > trigger.expiresAt) throw new SlackApiError("expired_trigger_id");
  emu.triggers.delete(triggerId);
  return triggerId;
}

function basicAuth(header: string | undefined): { id?: string; secret?: string } {
  const match = header ? /^Basic\s+(.+)$/i.exec(header) : null;
  if (!match?.[1]) return {};
  const decoded = Buffer.from(match[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? {} : { id: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

const READ_SCOPE: Record<SlackChannel["type"], string> = {
  public: "channels:read",
  private: "groups:read",
  im: "im:read",
  mpim: "mpim:read",
};

export const WORKSPACE_METHODS: Record<string, MethodSpec> = {
  "api.test": {
    auth: "none",
    rate: TIER_4,
    handler: (call) => ({ ok: true, args: call.args.raw }),
  },

  "auth.test": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const install = installOf(call);
      return {
        ok: true,
        url: `https://${install.teamDomain}.slack.com/`,
        team: install.teamName,
        user: emu.botName,
        team_id: install.teamId,
        user_id: install.botUserId,
        bot_id: install.botId,
        is_enterprise_install: false,
      };
    },
  },

  "auth.revoke": {
    auth: "bot",
    rate: TIER_3,
    handler: (call) => {
      if (call.args.bool("test")) return { ok: true, revoked: false };
      installOf(call).revoked = true;
      return { ok: true, revoked: true };
    },
  },

  "conversations.info": {
    auth: "bot",
    rate: TIER_3,
    handler: (call, emu) => {
      const channel = channelFor(emu, call, call.args.str("channel"));
      // Slack wants the read scope of the conversation's kind.
      const needed = READ_SCOPE[channel.type];
      const { scopes } = installOf(call);
      if (!scopes.includes(needed))
        throw new SlackApiError("missing_scope", { needed, provided: scopes.join(",") });
      return { ok: true, channel: channelJson(emu, channel) };
    },
  },

  "conversations.open": {
    auth: "bot",
    rate: TIER_3,
    handler: (call, emu) => {
      const install = installOf(call);
      const users = (call.args.str("users") ?? "").split(",").filter(Boolean);
      const channelArg = call.args.str("channel");
      if (channelArg) {
        const channel = channelFor(emu, call, channelArg);
        return { ok: true, channel: channelJson(emu, channel) };
      }
      if (users.length !== 1)
        throw new SlackApiError(
          users.length === 0 ? "users_list_not_supplied" : "not_enough_users",
        );
      const user = emu.world.users.get(users[0] ?? "");
      if (!user || user.teamId !== install.teamId) throw new SlackApiError("user_not_found");
      const im = emu.world.imFor(user.id, install.teamId);
      const full = call.args.bool("return_im");
      return { ok: true, channel: full ? channelJson(emu, im) : { id: im.id } };
    },
  },

  "conversations.history": {
    auth: "bot",
    rate: TIER_3,
    handler: (call, emu) => {
      const channel = historyReadable(emu, call, call.args.str("channel"));
      const top = emu.world
        .channelMessages(channel.id)
        .filter(
          (m) =>
            !m.deleted &&
            (!m.threadTs || m.threadTs === m.ts || m.replyBroadcast) &&
            inRange(m.ts, call.args),
        )
        .reverse();
      const { slice, hasMore, nextCursor } = page(top, call.args, 100, `history:${channel.id}`);
      return {
        ok: true,
        messages: slice.map((m) => messageJson(emu, m)),
        has_more: hasMore,
        pin_count: 0,
        channel_actions_ts: null,
        channel_actions_count: 0,
        response_metadata: { next_cursor: nextCursor },
      };
    },
  },

  "conversations.replies": {
    auth: "bot",
    rate: TIER_3,
    handler: (call, emu) => {
      const channel = historyReadable(emu, call, call.args.str("channel"));
      const ts = call.args.str("ts");
      const target = ts ? emu.world.findMessage(channel.id, ts) : undefined;
      if (!target || target.deleted) throw new SlackApiError("thread_not_found");
      const thread =
        target.threadTs && target.threadTs !== target.ts
          ? [target]
          : [target, ...emu.world.replies(channel.id, target.ts)];
      const { slice, hasMore, nextCursor } = page(
        thread.filter((m) => m === target || inRange(m.ts, call.args)),
        call.args,
        1000,
        `replies:${channel.id}:${target.ts}`,
      );
      return {
        ok: true,
        messages: slice.map((m) => messageJson(emu, m)),
        has_more: hasMore,
        ...(hasMore ? { response_metadata: { next_cursor: nextCursor } } : {}),
      };
    },
  },

  "users.info": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const install = installOf(call);
      const id = call.args.str("user");
      const user = id ? emu.world.users.get(id) : undefined;
      // People of another organization are visible through a channel shared with it (Slack Connect).
      if (!user || !emu.world.canSee(install.teamId, user))
        throw new SlackApiError("user_not_found");
      const email = install.scopes.includes("users:read.email");
      return { ok: true, user: userJson(emu, user, { email }) };
    },
  },

  "files.getUploadURLExternal": {
    auth: "bot",
    rate: TIER_4,
    scope: "files:write",
    handler: (call, emu) => {
      const install = installOf(call);
      const filename = call.args.str("filename");
      const length = call.args.int("length");
      const missing = [!filename && "filename", length === undefined && "length"].filter(Boolean);
      if (missing.length > 0) {
        throw new SlackApiError("invalid_arguments", {
          response_metadata: {
            messages: missing.map((f) => `[ERROR] missing required field: ${f}`),
          },
        });
      }
      const id = emu.world.ids.next("F");
      const name = filename ?? "file";
      const altText = call.args.str("alt_text");
      emu.world.files.set(id, {
        id,
        teamId: install.teamId,
        name,
        title: name,
        mimetype: mimeFor(name),
        filetype: extOf(name),
        size: length ?? 0,
        user: install.botUserId,
        created: Math.floor(Date.now() / 1000),
        data: Buffer.alloc(0),
        uploaded: false,
        ...(altText ? { altText } : {}),
      });
      return { ok: true, upload_url: `${emu.baseUrl}/upload/v1/${id}`, file_id: id };
    },
  },

  "files.completeUploadExternal": {
    auth: "bot",
    rate: TIER_4,
    scope: "files:write",
    handler: (call, emu) => {
      const install = installOf(call);
      const { args } = call;
      const list = args.json("files");
      if (!Array.isArray(list) || list.length === 0) {
        throw new SlackApiError("invalid_arguments", {
          response_metadata: { messages: ["[ERROR] missing required field: files"] },
        });
      }
      const files: SlackFile[] = list.map((entry) => {
        const { id, title } = (entry ?? {}) as { id?: string; title?: string };
        const file = id ? emu.world.files.get(id) : undefined;
        if (!file || file.teamId !== install.teamId || !file.uploaded) {
          throw new SlackApiError("file_not_found");
        }
        if (title) file.title = title;
        return file;
      });
      const channelRef = args.str("channel_id") ?? args.str("channels")?.split(",")[0];
      if (channelRef) {
        const channel = postTarget(emu, call, channelRef);
        const content = readContent(args, "initial_comment");
        const threadTs = resolveThread(emu, channel.id, args.str("thread_ts"));
        const message = newBotMessage(emu, install, channel, {
          text: content.text ?? "",
          ...(content.blocks && !content.text ? { blocks: content.blocks } : {}),
          ...(threadTs ? { threadTs } : {}),
          files,
          postedVia: "files.completeUploadExternal",
        });
        for (const file of files) {
          file.channel = channel.id;
          file.messageTs = message.ts;
          if (threadTs) file.threadTs = threadTs;
          if (content.text) file.initialComment = content.text;
        }
        emu.echo("new", message);
      }
      return { ok: true, files: files.map((f) => fileJson(emu, f)) };
    },
  },

  "files.info": {
    auth: "bot",
    rate: TIER_4,
    scope: "files:read",
    handler: (call, emu) => {
      const install = installOf(call);
      const id = call.args.str("file");
      const file = id ? emu.world.files.get(id) : undefined;
      if (!file || file.teamId !== install.teamId) throw new SlackApiError("file_not_found");
      return {
        ok: true,
        file: fileJson(emu, file),
        comments: [],
        response_metadata: { next_cursor: "" },
      };
    },
  },

  "views.open": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const triggerId = useTrigger(emu, call);
      const view = readView(call.args, "modal");
      return recordView(emu, call, "views.open", view, { triggerId });
    },
  },

  "views.push": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const triggerId = useTrigger(emu, call);
      const view = readView(call.args, "modal");
      return recordView(emu, call, "views.push", view, { triggerId });
    },
  },

  "views.update": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const viewId = call.args.str("view_id");
      const externalId = call.args.str("external_id");
      const existing = emu.views.find(
        (v) => (viewId && v.id === viewId) || (externalId && v.view.external_id === externalId),
      );
      if (!existing) throw new SlackApiError("not_found");
      const view = readView(call.args, "any");
      return recordView(emu, call, "views.update", view, { id: existing.id });
    },
  },

  "views.publish": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const install = installOf(call);
      const userId = call.args.str("user_id");
      const user = userId ? emu.world.users.get(userId) : undefined;
      if (!userId || !user || user.teamId !== install.teamId)
        throw new SlackApiError("user_not_found");
      const view = readView(call.args, "home");
      return recordView(emu, call, "views.publish", view, { userId });
    },
  },

  // The assistant pane: each call names a thread of the app's DM (channel_id + thread_ts).
  "assistant.threads.setStatus": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const thread = assistantThread(call, emu);
      const status = call.args.str("status");
      if (status === undefined) throw missingArgument("status");
      thread.status = status;
      thread.statuses.push(status);
      return { ok: true };
    },
  },

  "assistant.threads.setTitle": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const thread = assistantThread(call, emu);
      const title = call.args.str("title");
      if (!title) throw missingArgument("title");
      thread.title = title;
      return { ok: true };
    },
  },

  "assistant.threads.setSuggestedPrompts": {
    auth: "bot",
    rate: TIER_4,
    handler: (call, emu) => {
      const thread = assistantThread(call, emu);
      const prompts = call.args.json("prompts");
      const valid =
        Array.isArray(prompts) &&
        prompts.length >= 1 &&
        prompts.length <= 4 &&
        prompts.every(
          (p) =>
            p &&
            typeof p === "object" &&
            typeof (p as { title?: unknown }).title === "string" &&
            typeof (p as { message?: unknown }).message === "string",
        );
      if (!valid) throw missingArgument("prompts");
      thread.prompts = prompts as { title: string; message: string }[];
      const title = call.args.str("title");
      if (title) thread.promptsTitle = title;
      return { ok: true };
    },
  },

  "apps.connections.open": {
    auth: "app",
    rate: { limit: 10, windowMs: MINUTE },
    handler: (_call, emu) => ({ ok: true, url: emu.openSocketUrl() }),
  },

  "oauth.v2.access": {
    auth: "none",
    rate: TIER_4,
    handler: (call, emu) => {
      const basic = basicAuth(call.authorization);
      const clientId = basic.id ?? call.args.str("client_id");
      const clientSecret = basic.secret ?? call.args.str("client_secret");
      if (!emu.clientId || clientId !== emu.clientId) throw new SlackApiError("invalid_client_id");
      if (clientSecret !== emu.clientSecret) throw new SlackApiError("bad_client_secret");
      const code = call.args.str("code");
      const grant = code ? emu.oauthCodes.get(code) : undefined;
      if (!grant || grant.used) throw new SlackApiError("invalid_code");
      const redirectUri = call.args.str("redirect_uri");
      if (grant.redirectUri && redirectUri !== grant.redirectUri)
        throw new SlackApiError("bad_redirect_uri");
      grant.used = true;
      const install = emu.install(grant);
      return {
        ok: true,
        app_id: emu.appId,
        authed_user: {
          id: grant.userId,
          ...(grant.userScopes.length
            ? {
                scope: grant.userScopes.join(","),
                access_token: `xoxp-${randomBytes(12).toString("hex")}`,
                token_type: "user",
              }
            : {}),
        },
        scope: install.scopes.join(","),
        token_type: "bot",
        access_token: install.token,
        bot_user_id: install.botUserId,
        team: { id: install.teamId, name: install.teamName },
        enterprise: null,
        is_enterprise_install: false,
      };
    },
  },
};

function missingArgument(name: string): SlackApiError {
  return new SlackApiError("invalid_arguments", {
    response_metadata: { messages: [`[ERROR] missing required field: ${name}`] },
  });
}

/** The assistant thread an assistant.threads.* call names (its DM must be readable). */
function assistantThread(call: ApiCall, emu: SlackBackend): SlackAssistantThread {
  const channel = readable(emu, call, call.args.str("channel_id"));
  const threadTs = call.args.str("thread_ts");
  if (!threadTs) throw missingArgument("thread_ts");
  const thread = emu.world.assistantThreads.get(`${channel.id}:${threadTs}`);
  if (!thread) throw new SlackApiError("invalid_thread_ts");
  return thread;
}
