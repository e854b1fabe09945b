/**
 * A Slack emulator speaking the real wire protocol: Web API at /api/<method>,
 * signed Events API / interactivity deliveries to the app, response_url, the
 * external file upload flow, OAuth v2 and Socket Mode.
 */

import { randomBytes } from "node:crypto";
import { settled } from "@lobu/core/best-effort";
import { postTo } from "../platform-kit/deliver.ts";
import { type HttpServer, listen } from "../platform-kit/http.ts";
import { extOf, mimeFor } from "../platform-kit/mime.ts";
import { FailureQueue, RateLimiter } from "../platform-kit/rate-limit.ts";
import { ChangeSignal, type WaitOptions } from "../platform-kit/signal.ts";
import { resolveThread } from "./api-support.ts";
import { interactiveElements } from "./blocks.ts";
import {
  blockActionsPayload,
  channelTypeOf,
  clientMsgId,
  type EnvelopeContext,
  eventEnvelope,
  triggerId as newTriggerId,
  richTextBlocks,
  slashCommandFields,
  userMessageEvent,
} from "./inbound.ts";
import { route, type SlackHost } from "./routes.ts";
import { signatureHeaders } from "./signing.ts";
import { type SocketEnvelope, SocketModeHub } from "./socket-mode.ts";
import { SlackWorld } from "./state.ts";
import type {
  SlackAssistantThread,
  SlackCall,
  SlackChannel,
  SlackChannelType,
  SlackClickInput,
  SlackClickResult,
  SlackDelivery,
  SlackDeliveryResult,
  SlackEmulatorOptions,
  SlackEphemeral,
  SlackEventSubscription,
  SlackFailure,
  SlackFile,
  SlackInstallation,
  SlackMessage,
  SlackOAuthCodeInput,
  SlackResponseUrlPost,
  SlackSendOptions,
  SlackSlashCommandInput,
  SlackUser,
  SlackUserGroup,
  SlackUserMessageInput,
  SlackUserMessageResult,
  SlackView,
} from "./types.ts";
import type { OAuthGrant, ResponseUrlTarget, SlackBackend } from "./web-api.ts";
import { fileJson, messageJson, teamOf } from "./wire.ts";

const DEFAULT_SCOPES = [
  "app_mentions:read",
  "channels:history",
  "chat:write",
  "commands",
  "files:read",
  "files:write",
  "groups:history",
  "im:history",
  "im:read",
  "im:write",
  "reactions:read",
  "reactions:write",
  "users:read",
  "users:read.email",
  "usergroups:read",
  "channels:read",
  "groups:read",
  "mpim:read",
  "chat:write.customize",
];

export interface AddUserInput {
  id?: string;
  name?: string;
  realName?: string;
  teamId?: string;
  isBot?: boolean;
  email?: string;
  tz?: string;
  /** A guest: `multi` (is_restricted) or `single` (is_ultra_restricted). */
  guest?: "multi" | "single";
  /** Deactivated (`deleted`). */
  deleted?: boolean;
  admin?: boolean;
  owner?: boolean;
}

export interface AddUserGroupInput {
  id?: string;
  handle: string;
  teamId?: string;
  users: string[];
}

export interface AddChannelInput {
  id?: string;
  name?: string;
  type?: SlackChannelType;
  teamId?: string;
  /** Whether the bot is a member (default true). */
  isMember?: boolean;
  isArchived?: boolean;
  members?: string[];
  /** The DM partner, for type "im". */
  user?: string;
  topic?: string;
  purpose?: string;
  /** Other organizations' team ids: a Slack Connect channel (is_ext_shared). */
  sharedWith?: string[];
}

export interface MessagesQuery {
  /** Only this thread: the parent and its replies. */
  threadTs?: string;
  /** Include messages users posted (default: only the app's). */
  includeUsers?: boolean;
  includeDeleted?: boolean;
}

const MESSAGE_SUBSCRIPTION: Record<SlackChannelType, SlackEventSubscription> = {
  im: "message.im",
  public: "message.channels",
  private: "message.groups",
  mpim: "message.mpim",
};

export async function startSlackEmulator(options: SlackEmulatorOptions): Promise<SlackEmulator> {
  const emu = new SlackEmulator(options);
  await emu.listen(options.port ?? 0);
  return emu;
}

export class SlackEmulator implements SlackBackend {
  readonly world = new SlackWorld();
  /** Every Web API call, in arrival order. */
  readonly calls: SlackCall[] = [];
  /** Every request the emulator sent to the app (events, interactions, commands). */
  readonly deliveries: SlackDelivery[] = [];
  readonly responseUrlPosts: SlackResponseUrlPost[] = [];
  readonly views: SlackView[] = [];
  readonly triggers = new Map<string, { expiresAt: number; teamId: string; userId: string }>();
  readonly oauthCodes = new Map<string, OAuthGrant>();

  readonly signingSecret: string;
  readonly botToken: string;
  readonly teamId: string;
  readonly botUserId: string;
  readonly botId: string;
  readonly appId: string;
  readonly botName: string;
  readonly clientId?: string;
  readonly clientSecret?: string;
  readonly appToken?: string;
  readonly verificationToken: string;
  eventsUrl?: string;
  interactivityUrl?: string;
  commandsUrl?: string;
  subscriptions: SlackEventSubscription[];

  readonly #options: SlackEmulatorOptions;
  readonly #signal = new ChangeSignal();
  readonly #limiter = new RateLimiter();
  readonly #failures = new FailureQueue<SlackFailure>();
  readonly #responseUrls = new Map<string, ResponseUrlTarget>();
  readonly #socket: SocketModeHub;
  readonly #host: SlackHost;
  #server?: HttpServer;
  #closed = false;
  #authorizeAs: SlackOAuthCodeInput = {};
  #textLimit: number | undefined;

  constructor(options: SlackEmulatorOptions) {
    this.#options = options;
    this.signingSecret = options.signingSecret;
    this.botToken = options.botToken;
    this.teamId = options.teamId ?? "T0TEAM0001";
    this.botUserId = options.botUserId ?? "U0BOT00001";
    this.botId = options.botId ?? "B0BOT00001";
    this.appId = options.appId ?? "A0APP00001";
    this.botName = options.botName ?? "lobu";
    this.verificationToken = options.verificationToken ?? "verification-token-unused";
    this.subscriptions = options.subscriptions ?? ["app_mention", "message.im"];
    if (options.clientId) this.clientId = options.clientId;
    if (options.clientSecret) this.clientSecret = options.clientSecret;
    if (options.appToken) this.appToken = options.appToken;
    if (options.eventsUrl) this.eventsUrl = options.eventsUrl;
    if (options.interactivityUrl) this.interactivityUrl = options.interactivityUrl;
    if (options.commandsUrl) this.commandsUrl = options.commandsUrl;
    this.#socket = new SocketModeHub(this.appId, () => this.#signal.notify());
    this.#host = {
      backend: this,
      world: this.world,
      calls: this.calls,
      responseUrlPosts: this.responseUrlPosts,
      failures: this.#failures,
      limiter: this.#limiter,
      rateLimits: options.rateLimits,
      responseUrls: this.#responseUrls,
      authorizeAs: () => this.#authorizeAs,
      issueOAuthCode: (input) => this.issueOAuthCode(input),
      installForTeam: (teamId) => this.#installForTeam(teamId),
      notify: () => this.#signal.notify(),
      textLimit: () => this.#textLimit,
      ...(options.appToken ? { appToken: options.appToken } : {}),
      ...(options.clientId ? { clientId: options.clientId } : {}),
    };

    const domain = options.teamDomain ?? "lobu-test";
    this.world.teams.set(this.teamId, {
      id: this.teamId,
      name: options.teamName ?? "Lobu Test",
      domain,
    });
    this.world.installations.set(this.botToken, {
      token: this.botToken,
      teamId: this.teamId,
      teamName: options.teamName ?? "Lobu Test",
      teamDomain: domain,
      botUserId: this.botUserId,
      botId: this.botId,
      scopes: DEFAULT_SCOPES,
      revoked: false,
    });
    this.#addBotUser(this.botUserId, this.botId, this.teamId);
  }

  /** @internal Started by startSlackEmulator. */
  async listen(port: number): Promise<void> {
    this.#server = await listen((req, res) => route(this.#host, req, res), port);
    this.#socket.attach(this.#server.server, this.#server.url);
  }

  /** Base URL, e.g. http://127.0.0.1:4100. */
  get url(): string {
    if (!this.#server) throw new Error("Slack emulator is not listening");
    return this.#server.url;
  }

  /** Pass as WebClient's slackApiUrl. */
  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  get baseUrl(): string {
    return this.url;
  }

  get defaultTeamId(): string {
    return this.teamId;
  }

  get ephemerals(): readonly SlackEphemeral[] {
    return this.world.ephemerals;
  }

  /** Files the app uploaded (files.getUploadURLExternal + upload + complete). */
  get uploads(): SlackFile[] {
    return [...this.world.files.values()].filter((f) => f.uploaded && this.#isBotUser(f.user));
  }

  get installations(): SlackInstallation[] {
    return [...this.world.installations.values()];
  }

  // ---------------------------------------------------------------- world

  addUser(input: AddUserInput = {}): SlackUser {
    const id = input.id ?? this.world.ids.next("U");
    const name = input.name ?? id.toLowerCase();
    const user = this.world.addUser({
      id,
      teamId: input.teamId ?? this.teamId,
      name,
      realName: input.realName ?? name,
      isBot: input.isBot ?? false,
      deleted: input.deleted ?? false,
      tz: input.tz ?? "Europe/Berlin",
      ...(input.email ? { email: input.email } : {}),
      ...(input.guest === "multi" ? { restricted: true } : {}),
      ...(input.guest === "single" ? { ultraRestricted: true } : {}),
      ...(input.admin ? { admin: true } : {}),
      ...(input.owner ? { owner: true } : {}),
    });
    this.#signal.notify();
    return user;
  }

  addChannel(input: AddChannelInput = {}): SlackChannel {
    const type = input.type ?? "public";
    const prefix = type === "im" ? "D" : type === "public" ? "C" : "G";
    const id = input.id ?? this.world.ids.next(prefix);
    const channel = this.world.addChannel({
      id,
      teamId: input.teamId ?? this.teamId,
      name: input.name ?? (type === "im" ? (input.user ?? id) : id.toLowerCase()),
      type,
      isMember: input.isMember ?? true,
      isArchived: input.isArchived ?? false,
      created: Math.floor(Date.now() / 1000),
      topic: input.topic ?? "",
      purpose: input.purpose ?? "",
      ...(input.user ? { user: input.user } : {}),
      ...(input.members ? { members: input.members } : {}),
      ...(input.sharedWith?.length ? { sharedWith: [...input.sharedWith] } : {}),
    });
    this.#signal.notify();
    return channel;
  }

  /** A user group (`@handle`) whose members usergroups.users.list returns. */
  addUserGroup(input: AddUserGroupInput): SlackUserGroup {
    const group: SlackUserGroup = {
      id: input.id ?? this.world.ids.next("S"),
      teamId: input.teamId ?? this.teamId,
      handle: input.handle,
      users: [...input.users],
    };
    this.world.userGroups.set(group.id, group);
    return group;
  }

  /** The DM channel between the app and a user (created if needed). */
  imChannel(user: string): SlackChannel {
    const u = this.#ensureUser(user);
    return this.world.imFor(u.id, u.teamId);
  }

  /**
   * Messages in a channel, oldest first, latest content first-class and earlier
   * versions in `edits`. By default only what the app posted.
   */
  messages(channel: string, query: MessagesQuery = {}): SlackMessage[] {
    return this.world
      .channelMessages(channel)
      .filter(
        (m) =>
          (query.includeUsers || m.fromBot) &&
          (query.includeDeleted || !m.deleted) &&
          (query.threadTs === undefined ||
            m.ts === query.threadTs ||
            m.threadTs === query.threadTs),
      );
  }

  message(channel: string, ts: string): SlackMessage | undefined {
    return this.world.findMessage(channel, ts);
  }

  // ---------------------------------------------------------------- inbound

  /**
   * A user posts a message: it is stored, and Slack's events for it (app_mention
   * and/or message.* per `subscriptions`) are delivered to the app.
   */
  async userMessage(
    input: SlackUserMessageInput,
    opts: SlackSendOptions = {},
  ): Promise<SlackUserMessageResult> {
    const user = this.#ensureUser(input.user);
    const channel =
      this.world.channels.get(input.channel) ??
      this.world.ensureChannel(input.channel, user.teamId);
    const ts = this.world.clock.next();
    const threadTs = input.threadTs ? this.#threadParent(channel.id, input.threadTs) : undefined;
    const files = (input.files ?? []).map((f) => this.#storeUserFile(user, f));
    const message = this.world.addMessage({
      channel: channel.id,
      ts,
      teamId: user.teamId,
      user: user.id,
      fromBot: false,
      text: input.text,
      blocks: richTextBlocks(input.text),
      mrkdwn: true,
      replyBroadcast: false,
      files,
      reactions: [],
      edits: [],
      deleted: false,
      postedVia: "user",
      at: Date.now(),
      ...(threadTs ? { threadTs } : {}),
    });
    this.#signal.notify();

    // In a Slack Connect channel the event goes to the app's install on the channel's team.
    const hostTeam = channel.teamId;
    const install = this.#installForTeam(hostTeam);
    const mentioned = input.text.includes(`<@${install.botUserId}>`);
    // Slack sends nothing from conversations the app is not a member of.
    const types: ("app_mention" | "message")[] = [];
    if (channel.isMember) {
      if (mentioned && channel.type !== "im" && this.subscriptions.includes("app_mention")) {
        types.push("app_mention");
      }
      if (this.subscriptions.includes(MESSAGE_SUBSCRIPTION[channel.type])) types.push("message");
    }

    const extra = { clientMsgId: clientMsgId(), blocks: message.blocks ?? [] };
    const fileWire = files.map((f) => fileJson(this, f));
    const events = types.map((type) => userMessageEvent(type, message, channel, fileWire, extra));
    const deliveries: SlackDeliveryResult[] = [];
    if (opts.deliver === false) return { ts, channel: channel.id, deliveries, status: 0, events };
    for (const event of events) {
      deliveries.push(await this.sendEvent(event, { teamId: hostTeam, ...opts }));
    }
    return { ts, channel: channel.id, deliveries, status: deliveries[0]?.status ?? 0, events };
  }

  /** A user @-mentions the app in a channel (the mention is prepended unless present). */
  mention(
    input: SlackUserMessageInput,
    opts: SlackSendOptions = {},
  ): Promise<SlackUserMessageResult> {
    const user = this.#ensureUser(input.user);
    const channel = this.world.channels.get(input.channel);
    const botUserId = this.#installForTeam(channel?.teamId ?? user.teamId).botUserId;
    const tag = `<@${botUserId}>`;
    const text = input.text.includes(tag) ? input.text : `${tag} ${input.text}`;
    return this.userMessage({ ...input, text }, opts);
  }

  /** A user writes to the app in its DM (message.im). */
  dm(
    input: Omit<SlackUserMessageInput, "channel">,
    opts: SlackSendOptions = {},
  ): Promise<SlackUserMessageResult> {
    const channel = this.imChannel(input.user);
    return this.userMessage({ ...input, channel: channel.id }, opts);
  }

  /**
   * A user adds a reaction to a message (stored on it); Slack sends
   * `reaction_added` when the app subscribes to it and is in the channel.
   */
  async userReacts(
    input: { user: string; channel: string; ts: string; name: string },
    opts: SlackSendOptions = {},
  ): Promise<SlackDeliveryResult | undefined> {
    const user = this.#ensureUser(input.user);
    const channel = this.world.channels.get(input.channel);
    const message = channel ? this.world.findMessage(channel.id, input.ts) : undefined;
    if (!channel || !message || message.deleted)
      throw new Error(`userReacts: no message ${input.ts} in ${input.channel}`);
    let reaction = message.reactions.find((r) => r.name === input.name);
    if (!reaction) {
      reaction = { name: input.name, users: [] };
      message.reactions.push(reaction);
    }
    if (!reaction.users.includes(user.id)) reaction.users.push(user.id);
    this.#signal.notify();
    if (!this.subscriptions.includes("reaction_added") || !channel.isMember) return undefined;
    return this.sendEvent(
      {
        type: "reaction_added",
        user: user.id,
        reaction: input.name,
        item: { type: "message", channel: channel.id, ts: message.ts },
        ...(message.user ? { item_user: message.user } : {}),
      },
      { teamId: user.teamId, ...opts },
    );
  }

  /**
   * A user opens the app's assistant pane (optionally from a channel): Slack
   * starts a thread in their DM with the app and sends
   * `assistant_thread_started`. Resolves with the thread.
   */
  async openAssistantThread(
    input: { user: string; fromChannel?: string },
    opts: SlackSendOptions = {},
  ): Promise<{ channel: string; threadTs: string; delivery: SlackDeliveryResult | undefined }> {
    const user = this.#ensureUser(input.user);
    const install = this.#installForTeam(user.teamId);
    const im = this.imChannel(user.id);
    const root = this.world.addMessage({
      channel: im.id,
      ts: this.world.clock.next(),
      teamId: user.teamId,
      user: install.botUserId,
      botId: install.botId,
      appId: this.appId,
      fromBot: true,
      text: "",
      mrkdwn: true,
      replyBroadcast: false,
      files: [],
      reactions: [],
      edits: [],
      deleted: false,
      postedVia: "assistant",
      at: Date.now(),
    });
    root.threadTs = root.ts;
    this.world.assistantThreads.set(`${im.id}:${root.ts}`, {
      channel: im.id,
      threadTs: root.ts,
      status: "",
      statuses: [],
    });
    this.#signal.notify();
    const delivery = this.subscriptions.includes("assistant_thread_started")
      ? await this.sendEvent(
          {
            type: "assistant_thread_started",
            assistant_thread: {
              user_id: user.id,
              channel_id: im.id,
              thread_ts: root.ts,
              context: {
                channel_id: input.fromChannel ?? null,
                team_id: user.teamId,
                enterprise_id: null,
              },
            },
          },
          { teamId: user.teamId, ...opts },
        )
      : undefined;
    return { channel: im.id, threadTs: root.ts, delivery };
  }

  /** What the app set on an assistant pane thread. */
  assistantThread(channel: string, threadTs: string): SlackAssistantThread | undefined {
    return this.world.assistantThreads.get(`${channel}:${threadTs}`);
  }

  /** POSTs an event_callback envelope for `event`, signed like Slack. */
  async sendEvent(
    event: Record<string, unknown>,
    opts: SlackSendOptions = {},
  ): Promise<SlackDeliveryResult> {
    const teamId = opts.teamId ?? (typeof event.team === "string" ? event.team : this.teamId);
    const eventId = opts.eventId ?? this.world.ids.next("Ev");
    const envelope = eventEnvelope(
      this.#envelopeContext(teamId),
      { event_ts: this.world.clock.next(), ...event },
      eventId,
      Math.floor(Date.now() / 1000),
    );
    const result = await this.#deliver({
      kind: "event",
      payload: envelope,
      body: JSON.stringify(envelope),
      contentType: "application/json",
      url: opts.url ?? this.eventsUrl,
      socketType: "events_api",
      opts,
      eventId,
    });
    return { ...result, eventId };
  }

  /** Sends Slack's url_verification challenge; `verified` says whether the app echoed it. */
  async urlVerification(
    opts: SlackSendOptions = {},
  ): Promise<SlackDeliveryResult & { challenge: string; verified: boolean }> {
    const challenge = randomBytes(24).toString("base64url");
    const payload = { token: this.verificationToken, challenge, type: "url_verification" };
    const result = await this.#deliver({
      kind: "url_verification",
      payload,
      body: JSON.stringify(payload),
      contentType: "application/json",
      url: opts.url ?? this.eventsUrl,
      opts: { ...opts, via: "http" },
    });
    let echoed = result.body.trim();
    try {
      const parsed = JSON.parse(echoed) as { challenge?: unknown };
      if (typeof parsed === "object" && parsed && typeof parsed.challenge === "string") {
        echoed = parsed.challenge;
      }
    } catch {
      // plain-text echo
    }
    return { ...result, challenge, verified: result.status === 200 && echoed === challenge };
  }

  /** A user clicks a button in a message the app posted (block_actions). */
  async clickButton(
    input: SlackClickInput,
    opts: SlackSendOptions = {},
  ): Promise<SlackClickResult> {
    const user = this.#ensureUser(input.user);
    const channel = this.world.channels.get(input.channel);
    const message = channel ? this.world.findMessage(channel.id, input.messageTs) : undefined;
    if (!channel || !message || message.deleted) {
      throw new Error(`clickButton: no message ${input.messageTs} in ${input.channel}`);
    }
    const found = [...interactiveElements(message.blocks)].find(
      ({ element }) => element.action_id === input.actionId,
    );
    if (!found) {
      const ids = [...interactiveElements(message.blocks)].map(({ element }) => element.action_id);
      throw new Error(
        `clickButton: message ${input.messageTs} has no element with action_id "${input.actionId}" (has: ${ids.join(", ") || "none"})`,
      );
    }
    const { element } = found;
    const triggerId = this.#issueTrigger(user);
    const threadTs =
      message.threadTs && message.threadTs !== message.ts ? message.threadTs : undefined;
    const responseUrl = this.#issueResponseUrl("actions", {
      teamId: user.teamId,
      channel: channel.id,
      messageTs: message.ts,
      userId: user.id,
      ...(threadTs ? { threadTs } : {}),
    });
    const action: Record<string, unknown> = {
      action_id: input.actionId,
      block_id: input.blockId ?? found.blockId,
      type: element.type,
      action_ts: this.world.clock.next(),
    };
    if (element.text !== undefined) action.text = element.text;
    const value = input.value ?? element.value;
    if (value !== undefined) action.value = value;
    if (element.style !== undefined) action.style = element.style;
    const payload = blockActionsPayload({
      ctx: this.#envelopeContext(user.teamId),
      user,
      channel,
      message: messageJson(this, message),
      messageTs: message.ts,
      ...(threadTs ? { threadTs } : {}),
      action,
      triggerId,
      responseUrl,
    });
    const result = await this.#deliver({
      kind: "interaction",
      payload,
      body: new URLSearchParams({ payload: JSON.stringify(payload) }).toString(),
      contentType: "application/x-www-form-urlencoded",
      url: opts.url ?? this.interactivityUrl ?? this.eventsUrl,
      socketType: "interactive",
      opts,
    });
    return { ...result, payload, responseUrl, triggerId };
  }

  /** A user runs a slash command. */
  async slashCommand(
    input: SlackSlashCommandInput,
    opts: SlackSendOptions = {},
  ): Promise<SlackDeliveryResult & { responseUrl: string; triggerId: string }> {
    const user = this.#ensureUser(input.user);
    const channel =
      this.world.channels.get(input.channel) ??
      this.world.ensureChannel(input.channel, user.teamId);
    const triggerId = this.#issueTrigger(user);
    const responseUrl = this.#issueResponseUrl("commands", {
      teamId: user.teamId,
      channel: channel.id,
      userId: user.id,
    });
    const fields = slashCommandFields({
      ctx: this.#envelopeContext(user.teamId),
      user,
      channel,
      command: input.command,
      text: input.text ?? "",
      triggerId,
      responseUrl,
    });
    const result = await this.#deliver({
      kind: "command",
      payload: fields,
      body: new URLSearchParams(fields).toString(),
      contentType: "application/x-www-form-urlencoded",
      url: opts.url ?? this.commandsUrl ?? this.eventsUrl,
      socketType: "slash_commands",
      opts,
    });
    return { ...result, responseUrl, triggerId };
  }

  // ---------------------------------------------------------------- knobs

  /** The next `times` calls to `method` fail: a Slack error code, or a shaped failure. */
  failNext(method: string, failure: string | SlackFailure, times = 1): void {
    this.#failures.push(method, typeof failure === "string" ? { error: failure } : failure, times);
  }

  /**
   * Message text longer than `chars` is refused with msg_too_long (Slack
   * refuses over 40,000); undefined restores Slack's limit.
   */
  limitTextLength(chars: number | undefined): void {
    this.#textLimit = chars;
  }

  /** The next `times` calls to `method` answer 429 ratelimited with Retry-After. */
  forceRateLimit(method: string, opts: { retryAfter?: number; times?: number } = {}): void {
    this.#failures.push(method, { retryAfter: opts.retryAfter ?? 1 }, opts.times ?? 1);
  }

  /** Later calls with this token fail with token_revoked. */
  revokeToken(token: string): void {
    const install = this.world.installations.get(token);
    if (install) install.revoked = true;
  }

  /** An OAuth code as if a user approved the install; exchange it with oauth.v2.access. */
  issueOAuthCode(input: SlackOAuthCodeInput = {}): string {
    const code = `${Date.now()}.${randomBytes(16).toString("hex")}`;
    this.oauthCodes.set(code, {
      teamId: input.teamId ?? this.world.ids.next("T"),
      teamName: input.teamName ?? "Installed Workspace",
      userId: input.userId ?? this.world.ids.next("U"),
      scopes: input.scopes ?? DEFAULT_SCOPES,
      userScopes: input.userScopes ?? [],
      used: false,
      ...(input.redirectUri ? { redirectUri: input.redirectUri } : {}),
    });
    return code;
  }

  /** Who "approves" at GET /oauth/v2/authorize (workspace, installing user). */
  setAuthorizeIdentity(input: SlackOAuthCodeInput): void {
    this.#authorizeAs = input;
  }

  /** @internal oauth.v2.access: creates (or refreshes) the workspace's installation. */
  install(grant: OAuthGrant): SlackInstallation {
    let team = this.world.teams.get(grant.teamId);
    if (!team) {
      team = {
        id: grant.teamId,
        name: grant.teamName,
        domain: grant.teamName.toLowerCase().replace(/[^a-z0-9]+/g, "-"),
      };
      this.world.teams.set(team.id, team);
    }
    if (!this.world.users.has(grant.userId)) this.addUser({ id: grant.userId, teamId: team.id });
    const existing = [...this.world.installations.values()].find(
      (i) => i.teamId === team.id && !i.revoked,
    );
    if (existing) {
      existing.scopes = grant.scopes;
      return existing;
    }
    const install: SlackInstallation = {
      token: `xoxb-${randomDigits(12)}-${randomDigits(13)}-${randomBytes(12).toString("base64url")}`,
      teamId: team.id,
      teamName: team.name,
      teamDomain: team.domain,
      botUserId: this.world.ids.next("U"),
      botId: this.world.ids.next("B"),
      scopes: grant.scopes,
      installerUserId: grant.userId,
      revoked: false,
    };
    this.world.installations.set(install.token, install);
    this.#addBotUser(install.botUserId, install.botId, team.id);
    this.#signal.notify();
    return install;
  }

  /** @internal Sends the message.* event Slack emits for the app's own activity. */
  echo(
    kind: "new" | "changed" | "deleted",
    message: SlackMessage,
    previous?: Record<string, unknown>,
  ): void {
    const channel = this.world.channels.get(message.channel);
    if (this.#options.echoBotEvents === false || this.#closed || !channel) return;
    if (!this.subscriptions.includes(MESSAGE_SUBSCRIPTION[channel.type])) return;
    if (!this.eventsUrl && this.#socket.connections === 0) return;
    const channelType = channelTypeOf(channel);
    let event: Record<string, unknown>;
    if (kind === "new") {
      event = {
        ...messageJson(this, message),
        channel: channel.id,
        event_ts: message.ts,
        channel_type: channelType,
      };
    } else {
      const ts =
        kind === "changed"
          ? (message.editedTs ?? this.world.clock.next())
          : this.world.clock.next();
      event = {
        type: "message",
        subtype: kind === "changed" ? "message_changed" : "message_deleted",
        ...(kind === "changed"
          ? { message: messageJson(this, message) }
          : { deleted_ts: message.ts }),
        ...(previous ? { previous_message: previous } : {}),
        channel: channel.id,
        hidden: true,
        ts,
        event_ts: ts,
        channel_type: channelType,
      };
    }
    // After the API response, as Slack does; failures show up in `deliveries`.
    setTimeout(() => {
      if (!this.#closed) void settled(this.sendEvent(event, { teamId: message.teamId }));
    }, 0);
  }

  /** @internal apps.connections.open */
  openSocketUrl(): string {
    return this.#socket.openUrl();
  }

  get socketConnections(): number {
    return this.#socket.connections;
  }

  /** Sends a Socket Mode `disconnect` and closes, so the client must reconnect. */
  disconnectSocket(reason?: "warning" | "refresh_requested" | "link_disabled"): void {
    this.#socket.disconnect(reason);
  }

  // ---------------------------------------------------------------- waiting

  /** Resolves with the predicate's first truthy value, re-checked on every recorded change. */
  waitFor<T>(predicate: () => T | undefined | null | false, opts?: WaitOptions): Promise<T> {
    return this.#signal.waitFor(predicate, opts);
  }

  /** The first call to `method` (after `since` calls) matching `match`. */
  waitForCall(
    method: string,
    match: (call: SlackCall) => boolean = () => true,
    opts: WaitOptions & { since?: number } = {},
  ): Promise<SlackCall> {
    const since = opts.since ?? 0;
    return this.waitFor(
      () => this.calls.slice(since).find((c) => c.method === method && match(c)),
      { description: `a ${method} call`, ...opts },
    );
  }

  /**
   * Forgets activity (calls, messages, deliveries, files, views, counters,
   * injected failures); keeps users, channels, installations and URLs.
   */
  reset(): void {
    this.calls.length = 0;
    this.deliveries.length = 0;
    this.responseUrlPosts.length = 0;
    this.views.length = 0;
    this.triggers.clear();
    this.#responseUrls.clear();
    this.world.resetActivity();
    this.#limiter.reset();
    this.#failures.reset();
    this.#textLimit = undefined;
    this.#signal.notify();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#socket.close();
    await this.#server?.close();
  }

  // ---------------------------------------------------------------- internals

  #isBotUser(userId: string): boolean {
    return [...this.world.installations.values()].some((i) => i.botUserId === userId);
  }

  #addBotUser(id: string, botId: string, teamId: string): void {
    this.world.addUser({
      id,
      teamId,
      name: this.botName,
      realName: this.botName,
      isBot: true,
      botId,
      deleted: false,
      tz: "America/Los_Angeles",
    });
  }

  #ensureUser(id: string): SlackUser {
    return this.world.users.get(id) ?? this.addUser({ id });
  }

  #installForTeam(teamId: string): SlackInstallation {
    const install = [...this.world.installations.values()].find((i) => i.teamId === teamId);
    if (!install) throw new Error(`No installation for team ${teamId}`);
    return install;
  }

  #envelopeContext(teamId: string): EnvelopeContext {
    const install = this.#installForTeam(teamId);
    return {
      team: teamOf(this, teamId),
      appId: this.appId,
      botUserId: install.botUserId,
      verificationToken: this.verificationToken,
    };
  }

  #threadParent(channel: string, ts: string): string {
    const parentTs = resolveThread(this, channel, ts);
    if (!parentTs) throw new Error(`No message ${ts} in ${channel} to reply to`);
    return parentTs;
  }

  #storeUserFile(
    user: SlackUser,
    input: { name: string; content: string | Buffer; mimetype?: string; title?: string },
  ): SlackFile {
    const data = typeof input.content === "string" ? Buffer.from(input.content) : input.content;
    const file: SlackFile = {
      id: this.world.ids.next("F"),
      teamId: user.teamId,
      name: input.name,
      title: input.title ?? input.name,
      mimetype: input.mimetype ?? mimeFor(input.name),
      filetype: extOf(input.name),
      size: data.length,
      user: user.id,
      created: Math.floor(Date.now() / 1000),
      data,
      uploaded: true,
    };
    this.world.files.set(file.id, file);
    return file;
  }

  #issueTrigger(user: SlackUser): string {
    const id = newTriggerId();
    this.triggers.set(id, {
      expiresAt: Date.now() + (this.#options.triggerTtlMs ?? 3_000),
      teamId: user.teamId,
      userId: user.id,
    });
    return id;
  }

  #issueResponseUrl(kind: "actions" | "commands", target: Omit<ResponseUrlTarget, "uses">): string {
    const id = randomDigits(13);
    this.#responseUrls.set(id, { ...target, uses: 0 });
    return `${this.url}/${kind}/${target.teamId}/${id}/${randomBytes(12).toString("base64url")}`;
  }

  async #deliver(input: {
    kind: SlackDelivery["kind"];
    payload: unknown;
    body: string;
    contentType: string;
    url: string | undefined;
    socketType?: SocketEnvelope["type"];
    opts: SlackSendOptions;
    eventId?: string;
  }): Promise<SlackDeliveryResult> {
    const { opts } = input;
    const timeoutMs = opts.timeoutMs ?? this.#options.deliveryTimeoutMs ?? 3_000;
    const via =
      opts.via ??
      (!input.url && this.#socket.connections > 0 && input.socketType ? "socket" : "http");
    if (via === "socket") {
      if (!input.socketType)
        throw new Error(`${input.kind} payloads are not sent over Socket Mode`);
      const ack = await this.#socket.send(
        {
          type: input.socketType,
          payload: input.payload,
          acceptsResponsePayload: input.socketType !== "events_api",
          ...(opts.retryNum !== undefined ? { retryAttempt: opts.retryNum } : {}),
          ...(opts.retryReason ? { retryReason: opts.retryReason } : {}),
        },
        timeoutMs,
      );
      const response = {
        status: ack.acked ? 200 : 0,
        body: ack.payload === undefined ? "" : JSON.stringify(ack.payload),
        headers: {},
        timedOut: !ack.acked,
        ...(ack.acked ? {} : { error: `no ack within ${timeoutMs} ms` }),
      };
      this.#recordDelivery(input, "socket", {}, response);
      return {
        ...response,
        envelopeId: ack.envelopeId,
        ...(ack.payload !== undefined ? { ackPayload: ack.payload } : {}),
      };
    }
    if (!input.url) {
      throw new Error(
        `No Request URL for ${input.kind}: pass {url}, set eventsUrl/interactivityUrl, or connect Socket Mode`,
      );
    }
    const headers: Record<string, string> = {
      "Content-Type": input.contentType,
      "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
      Accept: "*/*",
      ...signatureHeaders(this.signingSecret, input.body, opts.forge),
    };
    if (opts.retryNum !== undefined) {
      headers["X-Slack-Retry-Num"] = String(opts.retryNum);
      headers["X-Slack-Retry-Reason"] = opts.retryReason ?? "http_timeout";
    }
    const response = await postTo(input.url, input.body, headers, timeoutMs);
    this.#recordDelivery(input, "http", headers, response);
    return response;
  }

  #recordDelivery(
    input: { kind: SlackDelivery["kind"]; body: string; url: string | undefined; eventId?: string },
    via: "http" | "socket",
    headers: Record<string, string>,
    response: SlackDelivery["response"],
  ): void {
    this.deliveries.push({
      kind: input.kind,
      url: via === "socket" ? "socket-mode" : (input.url ?? ""),
      via,
      body: input.body,
      headers,
      response,
      at: Date.now(),
      ...(input.eventId ? { eventId: input.eventId } : {}),
    });
    this.#signal.notify();
  }
}

function randomDigits(n: number): string {
  return Array.from(randomBytes(n), (b) => String(b % 10)).join("");
}
