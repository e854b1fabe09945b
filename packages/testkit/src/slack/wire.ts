/** Slack wire shapes (snake_case JSON) rendered from the emulator's model. */
import type { SlackWorld, TeamInfo } from "./state.ts";
import type { SlackChannel, SlackFile, SlackMessage, SlackUser } from "./types.ts";

export interface WireContext {
  world: SlackWorld;
  baseUrl: string;
  appId: string;
  botName: string;
}

export function teamOf(ctx: WireContext, teamId: string): TeamInfo {
  return ctx.world.teams.get(teamId) ?? { id: teamId, name: teamId, domain: teamId.toLowerCase() };
}

export function fileJson(ctx: WireContext, file: SlackFile): Record<string, unknown> {
  const team = teamOf(ctx, file.teamId);
  const base = `${ctx.baseUrl}/files-pri/${file.teamId}-${file.id}`;
  return {
    id: file.id,
    created: file.created,
    timestamp: file.created,
    name: file.name,
    title: file.title,
    mimetype: file.mimetype,
    filetype: file.filetype,
    pretty_type: file.filetype.toUpperCase(),
    user: file.user,
    user_team: file.teamId,
    editable: false,
    size: file.size,
    mode: "hosted",
    is_external: false,
    external_type: "",
    is_public: false,
    public_url_shared: false,
    display_as_bot: false,
    username: "",
    url_private: `${base}/${encodeURIComponent(file.name)}`,
    url_private_download: `${base}/download/${encodeURIComponent(file.name)}`,
    permalink: `https://${team.domain}.slack.com/files/${file.user}/${file.id}/${file.name}`,
    permalink_public: `https://slack-files.com/${file.teamId}-${file.id}-0000000000`,
    has_rich_preview: false,
    file_access: "visible",
    ...(file.altText ? { alt_txt: file.altText } : {}),
    ...(file.channel ? { channels: file.channel.startsWith("C") ? [file.channel] : [] } : {}),
  };
}

export function botProfile(
  ctx: WireContext,
  botId: string,
  teamId: string,
): Record<string, unknown> {
  return {
    id: botId,
    app_id: ctx.appId,
    name: ctx.botName,
    icons: { image_36: "", image_48: "", image_72: "" },
    deleted: false,
    updated: 1_700_000_000,
    team_id: teamId,
  };
}

export function messageJson(ctx: WireContext, m: SlackMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { type: "message" };
  if (m.replyBroadcast) out.subtype = "thread_broadcast";
  else if (!m.fromBot && m.files.length > 0) out.subtype = "file_share";
  out.text = m.text;
  out.user = m.user;
  out.ts = m.ts;
  out.team = m.teamId;
  if (m.username) out.username = m.username;
  if (m.iconUrl) out.icons = { image_48: m.iconUrl };
  if (m.botId) {
    out.bot_id = m.botId;
    out.app_id = m.appId;
    out.bot_profile = botProfile(ctx, m.botId, m.teamId);
  }
  if (m.blocks) out.blocks = m.blocks;
  if (m.attachments) out.attachments = m.attachments;
  if (m.metadata !== undefined) out.metadata = m.metadata;
  if (m.files.length > 0) {
    out.files = m.files.map((f) => fileJson(ctx, f));
    out.upload = false;
    out.display_as_bot = false;
  }
  if (m.threadTs) {
    out.thread_ts = m.threadTs;
    if (m.threadTs !== m.ts) {
      const parent = ctx.world.findMessage(m.channel, m.threadTs);
      if (parent) out.parent_user_id = parent.user;
    }
  }
  const replies = m.threadTs === m.ts ? ctx.world.replies(m.channel, m.ts) : [];
  if (replies.length > 0) {
    const users = [...new Set(replies.map((r) => r.user))];
    out.reply_count = replies.length;
    out.reply_users_count = users.length;
    out.latest_reply = replies[replies.length - 1]?.ts;
    out.reply_users = users;
    out.is_locked = false;
    out.subscribed = false;
  }
  if (m.editedTs) out.edited = { user: m.user, ts: m.editedTs };
  if (m.reactions.length > 0) {
    out.reactions = m.reactions.map((r) => ({
      name: r.name,
      users: r.users,
      count: r.users.length,
    }));
  }
  return out;
}

export function channelJson(_ctx: WireContext, c: SlackChannel): Record<string, unknown> {
  if (c.type === "im") {
    return {
      id: c.id,
      created: c.created,
      is_archived: false,
      is_im: true,
      is_org_shared: false,
      context_team_id: c.teamId,
      updated: c.created * 1000,
      user: c.user,
      is_user_deleted: false,
      priority: 0,
    };
  }
  return {
    id: c.id,
    name: c.name,
    is_channel: c.type === "public",
    is_group: c.type === "private",
    is_im: false,
    is_mpim: c.type === "mpim",
    is_private: c.type !== "public",
    created: c.created,
    is_archived: c.isArchived,
    is_general: false,
    unlinked: 0,
    name_normalized: c.name,
    is_shared: Boolean(c.sharedWith?.length),
    is_org_shared: false,
    is_pending_ext_shared: false,
    pending_shared: [],
    context_team_id: c.teamId,
    updated: c.created * 1000,
    parent_conversation: null,
    creator: "",
    is_ext_shared: Boolean(c.sharedWith?.length),
    shared_team_ids: [c.teamId, ...(c.sharedWith ?? [])],
    pending_connected_team_ids: [],
    is_member: c.isMember,
    topic: { value: c.topic, creator: "", last_set: 0 },
    purpose: { value: c.purpose, creator: "", last_set: 0 },
    previous_names: [],
  };
}

export function userJson(
  ctx: WireContext,
  u: SlackUser,
  opts: { email?: boolean } = {},
): Record<string, unknown> {
  return {
    id: u.id,
    team_id: u.teamId,
    name: u.name,
    deleted: u.deleted,
    color: "9f69e7",
    real_name: u.realName,
    tz: u.tz,
    tz_label: u.tz,
    tz_offset: 0,
    profile: {
      title: "",
      phone: "",
      skype: "",
      real_name: u.realName,
      real_name_normalized: u.realName,
      display_name: u.name,
      display_name_normalized: u.name,
      status_text: "",
      status_emoji: "",
      avatar_hash: "g000000000",
      // Slack shows the email only to apps with users:read.email.
      ...(u.email && opts.email !== false ? { email: u.email } : {}),
      ...(u.botId ? { bot_id: u.botId, api_app_id: ctx.appId, always_active: true } : {}),
      image_24: "",
      image_48: "",
      image_72: "",
      team: u.teamId,
    },
    is_admin: Boolean(u.admin || u.owner),
    is_owner: Boolean(u.owner),
    is_primary_owner: false,
    is_restricted: Boolean(u.restricted || u.ultraRestricted),
    is_ultra_restricted: Boolean(u.ultraRestricted),
    is_bot: u.isBot,
    is_app_user: false,
    updated: 1_700_000_000,
    is_email_confirmed: !u.isBot,
    who_can_share_contact_card: "EVERYONE",
  };
}
