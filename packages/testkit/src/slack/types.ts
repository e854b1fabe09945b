import type { DeliveryResponse } from "../platform-kit/deliver.ts";
import type { RateLimitRule } from "../platform-kit/rate-limit.ts";

export type { DeliveryResponse } from "../platform-kit/deliver.ts";

export interface SlackRateLimitRule extends RateLimitRule {
  /** Count per workspace (Slack's tiers) or per channel (chat.postMessage's special limit). */
  per?: "team" | "channel";
}

export interface SlackEmulatorOptions {
  port?: number;
  signingSecret: string;
  /** Bot token (xoxb-...) of the default installation. */
  botToken: string;
  teamId?: string;
  teamName?: string;
  /** Workspace subdomain, used in permalinks and auth.test's url. */
  teamDomain?: string;
  botUserId?: string;
  botId?: string;
  appId?: string;
  /** The bot user's handle (auth.test `user`). */
  botName?: string;
  /** The app's Events API Request URL; sendEvent and the helpers post here unless given {url}. */
  eventsUrl?: string;
  /** Interactivity Request URL; defaults to eventsUrl. */
  interactivityUrl?: string;
  /** Slash command Request URL; defaults to eventsUrl. */
  commandsUrl?: string;
  /** Event types the app subscribes to (drives which events a user message produces). */
  subscriptions?: SlackEventSubscription[];
  /**
   * Like Slack, send `message` events for the app's own posts, edits
   * (message_changed) and deletes (message_deleted) in conversations covered
   * by a message.* subscription (default true).
   */
  echoBotEvents?: boolean;
  /** OAuth app credentials for oauth.v2.access. */
  clientId?: string;
  clientSecret?: string;
  /** App-level token (xapp-...) accepted by apps.connections.open for Socket Mode. */
  appToken?: string;
  /** Legacy verification token put in envelopes' `token` field. */
  verificationToken?: string;
  /**
   * Per-method limits overriding the tier defaults; `false` turns counting off
   * (forceRateLimit still works).
   */
  rateLimits?: Record<string, SlackRateLimitRule> | false;
  /** Slack gives up on a delivery after 3 s and retries later. */
  deliveryTimeoutMs?: number;
  /** trigger_ids expire after 3 s on Slack. */
  triggerTtlMs?: number;
}

export type SlackEventSubscription =
  | "app_mention"
  | "message.im"
  | "message.channels"
  | "message.groups"
  | "message.mpim"
  | "reaction_added"
  | "assistant_thread_started";

export interface SlackUser {
  id: string;
  teamId: string;
  name: string;
  realName: string;
  isBot: boolean;
  botId?: string;
  deleted: boolean;
  tz: string;
  email?: string;
  /** Multi-channel guest (`is_restricted`). */
  restricted?: boolean;
  /** Single-channel guest (`is_ultra_restricted`). */
  ultraRestricted?: boolean;
  admin?: boolean;
  owner?: boolean;
}

/** A user group (`@team-handle`); usergroups.users.list lists its members. */
export interface SlackUserGroup {
  id: string;
  teamId: string;
  handle: string;
  users: string[];
}

export type SlackChannelType = "public" | "private" | "im" | "mpim";

export interface SlackChannel {
  id: string;
  teamId: string;
  name: string;
  type: SlackChannelType;
  /** The other member of an im. */
  user?: string;
  /** Whether the bot is in the channel (posting elsewhere fails with not_in_channel). */
  isMember: boolean;
  isArchived: boolean;
  /** Known members; when set, chat.postEphemeral checks the recipient is one. */
  members?: string[];
  created: number;
  topic: string;
  purpose: string;
  /** Other organizations' teams the channel is shared with (Slack Connect). */
  sharedWith?: string[];
}

export interface SlackFile {
  id: string;
  teamId: string;
  name: string;
  title: string;
  mimetype: string;
  filetype: string;
  size: number;
  user: string;
  created: number;
  data: Buffer;
  altText?: string;
  /** Where the file was shared by files.completeUploadExternal. */
  channel?: string;
  threadTs?: string;
  initialComment?: string;
  /** Message created by sharing the file. */
  messageTs?: string;
  uploaded: boolean;
}

/** One earlier state of an edited message. */
export interface SlackMessageVersion {
  text: string;
  blocks?: unknown[];
  attachments?: unknown[];
  /** Wall clock (ms) when this version was replaced. */
  replacedAt: number;
}

export interface SlackMessage {
  channel: string;
  ts: string;
  threadTs?: string;
  teamId: string;
  user: string;
  /** Set for messages the app posted. */
  botId?: string;
  appId?: string;
  fromBot: boolean;
  text: string;
  blocks?: unknown[];
  attachments?: unknown[];
  metadata?: unknown;
  mrkdwn: boolean;
  replyBroadcast: boolean;
  files: SlackFile[];
  reactions: { name: string; users: string[] }[];
  /** Previous versions, oldest first; the fields above hold the latest. */
  edits: SlackMessageVersion[];
  /** ts of the last edit (Slack's `edited.ts`). */
  editedTs?: string;
  deleted: boolean;
  /** chat.startStream state for streamed messages. */
  streaming?: "in_progress" | "completed";
  /** The name and icon the app posted it under (chat:write.customize). */
  username?: string;
  iconUrl?: string;
  /** Web API method (or "user", "response_url") that created the message. */
  postedVia: string;
  at: number;
}

export interface SlackEphemeral {
  channel: string;
  user: string;
  messageTs: string;
  threadTs?: string;
  text: string;
  blocks?: unknown[];
  via: string;
  at: number;
}

export interface SlackCall {
  method: string;
  args: Record<string, unknown>;
  /** Token the call authenticated with (header or body). */
  token?: string;
  teamId?: string;
  /** How the token arrived. */
  tokenSource?: "header" | "body";
  contentType: string;
  httpStatus: number;
  response: Record<string, unknown>;
  at: number;
}

export interface SlackView {
  id: string;
  teamId: string;
  method: "views.open" | "views.publish" | "views.update" | "views.push";
  userId?: string;
  triggerId?: string;
  view: Record<string, unknown>;
  at: number;
}

export interface SlackResponseUrlPost {
  id: string;
  body: Record<string, unknown>;
  /** Message the response_url belongs to. */
  channel?: string;
  messageTs?: string;
  at: number;
}

/** How to sign (or mis-sign) a request to the app. */
export interface SlackForgery {
  /** Sign with this secret instead of the real one. */
  secret?: string;
  /** Unix seconds to put in X-Slack-Request-Timestamp (and sign with). */
  timestamp?: number;
  /** Shorthand: timestamp this many seconds in the past (Slack apps reject > 300). */
  staleBySec?: number;
  /** Leave out headers. */
  omitSignature?: boolean;
  omitTimestamp?: boolean;
  /** Send this X-Slack-Signature verbatim. */
  signature?: string;
}

export interface SlackSendOptions {
  /** Request URL; defaults to the configured one for the kind of payload. */
  url?: string;
  forge?: SlackForgery;
  /** Marks a redelivery: adds X-Slack-Retry-Num / X-Slack-Retry-Reason. */
  retryNum?: number;
  retryReason?:
    | "http_timeout"
    | "too_many_redirects"
    | "ssl_error"
    | "http_error"
    | "unknown_error";
  /** Reuse an event_id (retries carry the original one). */
  eventId?: string;
  teamId?: string;
  timeoutMs?: number;
  /** "socket" delivers over the Socket Mode connection instead of HTTP. */
  via?: "http" | "socket";
  /** userMessage/mention/dm: false only records the message (seeding history), sending no events. */
  deliver?: boolean;
}

export interface SlackDelivery {
  kind: "event" | "interaction" | "url_verification" | "command";
  url: string;
  via: "http" | "socket";
  eventId?: string;
  body: string;
  headers: Record<string, string>;
  response: DeliveryResponse;
  at: number;
}

export interface SlackDeliveryResult extends DeliveryResponse {
  eventId?: string;
  /** Socket Mode: the envelope_id that was (or was not) acknowledged. */
  envelopeId?: string;
  /** Socket Mode: the ack's payload, when the app sent one. */
  ackPayload?: unknown;
}

export interface SlackInboundFile {
  name: string;
  content: string | Buffer;
  mimetype?: string;
  title?: string;
}

export interface SlackUserMessageInput {
  user: string;
  channel: string;
  text: string;
  threadTs?: string;
  files?: SlackInboundFile[];
}

export interface SlackUserMessageResult {
  ts: string;
  channel: string;
  /** One per event Slack sends for this message (app_mention, message.*). */
  deliveries: SlackDeliveryResult[];
  /** Status of the first delivery (0 if none was sent). */
  status: number;
  /** The event_callback events that were sent. */
  events: Record<string, unknown>[];
}

export interface SlackClickInput {
  user: string;
  channel: string;
  messageTs: string;
  actionId: string;
  /** Overrides the button's value. */
  value?: string;
  blockId?: string;
}

export interface SlackClickResult extends SlackDeliveryResult {
  payload: Record<string, unknown>;
  responseUrl: string;
  triggerId: string;
}

export interface SlackSlashCommandInput {
  user: string;
  channel: string;
  command: string;
  text?: string;
}

export interface SlackFailure {
  /** Slack error code returned as {ok:false,error}. */
  error?: string;
  /** HTTP status to answer with (e.g. 500, 503); the body is {ok:false,error}. */
  status?: number;
  /** Answer 429 ratelimited with this Retry-After. */
  retryAfter?: number;
  /** Extra fields merged into the error body. */
  extra?: Record<string, unknown>;
  /** Drop the connection without answering. */
  network?: boolean;
}

export interface SlackOAuthCodeInput {
  teamId?: string;
  teamName?: string;
  /** User who installed the app (authed_user.id). */
  userId?: string;
  scopes?: string[];
  userScopes?: string[];
  redirectUri?: string;
}

export interface SlackInstallation {
  token: string;
  teamId: string;
  teamName: string;
  teamDomain: string;
  botUserId: string;
  botId: string;
  scopes: string[];
  installerUserId?: string;
  revoked: boolean;
}

/** What the app set on an assistant pane thread (assistant.threads.*). */
export interface SlackAssistantThread {
  channel: string;
  threadTs: string;
  /** The status line now shown ("" = none), and every one set, in order. */
  status: string;
  statuses: string[];
  title?: string;
  prompts?: { title: string; message: string }[];
  promptsTitle?: string;
}
