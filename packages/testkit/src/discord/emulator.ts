/**
 * A Discord emulator: the REST routes a bot uses (/api/v10: gateway/bot,
 * messages, typing, DMs, application commands, interaction webhooks) with
 * Discord's limits, error bodies and 429s, the Gateway WebSocket
 * (gateway.ts), and interactions posted to the app's endpoint signed with
 * the application's Ed25519 key, as Discord signs them.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { parseBody } from "../platform-kit/body.ts";
import { postTo } from "../platform-kit/deliver.ts";
import { type HttpServer, listen, readRaw, sendJson } from "../platform-kit/http.ts";
import { FailureQueue } from "../platform-kit/rate-limit.ts";
import { ChangeSignal, type WaitOptions } from "../platform-kit/signal.ts";
import { DiscordGateway } from "./gateway.ts";
import { type RestWorld, restRoutes } from "./rest.ts";
import { type InteractionKeys, interactionKeys, signInteraction, strangerKey } from "./signing.ts";
import type {
  DiscordCall,
  DiscordChannel,
  DiscordComponent,
  DiscordEmulatorOptions,
  DiscordInteraction,
  DiscordMessage,
  DiscordUser,
} from "./types.ts";
import { type InteractionHook, type WebhookWorld, webhookRoute } from "./webhooks.ts";
import { attachmentId, EPHEMERAL, guildCreate, snowflake, wireMessage } from "./wire.ts";

const Intents = { GuildMessages: 1 << 9, DirectMessages: 1 << 12, MessageContent: 1 << 15 };

/** One application with its bot user: the emulator hosts the options' one and any added (addBot). */
interface DiscordApp {
  token: string;
  bot: DiscordUser;
  applicationId: string;
  keys: InteractionKeys;
  interactionsUrl: string | undefined;
  commands: { name: string; description?: string }[];
}

/** Another bot in the same Discord (its own application, token and interaction key). */
export interface DiscordBotApp {
  bot: DiscordUser;
  applicationId: string;
  /** Its application's public key (hex). */
  publicKey: string;
}

export async function startDiscordEmulator(
  options: DiscordEmulatorOptions,
): Promise<DiscordEmulator> {
  const emu = new DiscordEmulator(options);
  await emu.listen(options.port ?? 0);
  return emu;
}

export class DiscordEmulator {
  readonly calls: DiscordCall[] = [];
  readonly interactions: DiscordInteraction[] = [];
  /** Attachment ids fetched from the emulated CDN. */
  readonly cdnFetches: string[] = [];
  readonly channels = new Map<string, DiscordChannel>();
  readonly guilds = new Map<string, { id: string; name: string }>();
  readonly bot: DiscordUser;
  readonly applicationId: string;
  /** Global application commands as the bot registered them. */
  commands: { name: string; description?: string }[] = [];

  readonly #primary: DiscordApp;
  /** Every bot by token, the primary one first. */
  readonly #apps = new Map<string, DiscordApp>();
  readonly #signal = new ChangeSignal();
  readonly #failures = new FailureQueue<{ status: number; body: unknown; retryAfter?: number }>();
  readonly #messages: DiscordMessage[] = [];
  /** Interactions sent, by token: what their webhook may do. */
  readonly #hooks = new Map<string, InteractionHook>();
  readonly #gateway: DiscordGateway;
  #server?: HttpServer;

  constructor(options: DiscordEmulatorOptions) {
    this.#primary = this.#newApp(options);
    this.applicationId = this.#primary.applicationId;
    this.bot = this.#primary.bot;
    this.#gateway = new DiscordGateway({
      knows: (token) => this.#apps.has(token),
      ready: (sessionId, resumeUrl, token) => {
        const app = this.#apps.get(token) ?? this.#primary;
        return {
          v: 10,
          user: { ...app.bot, discriminator: "0", global_name: null, avatar: null, flags: 0 },
          guilds: [...this.guilds.keys()].map((id) => ({ id, unavailable: true })),
          session_id: sessionId,
          resume_gateway_url: resumeUrl,
          shard: [0, 1],
          application: { id: app.applicationId, flags: 0 },
        };
      },
      guilds: () => [...this.guilds.values()].map((g) => this.#guildCreate(g.id)),
      onChange: () => this.#signal.notify(),
    });
  }

  /** @internal Started by startDiscordEmulator. */
  async listen(port: number): Promise<void> {
    this.#server = await listen(async (req, res) => {
      await this.#route(req, res);
    }, port);
    this.#gateway.attach(this.#server.server, this.#server.url);
  }

  /** REST base (pass as @discordjs/rest's `api`): `<url>/api`. */
  get apiUrl(): string {
    if (!this.#server) throw new Error("Discord emulator is not listening");
    return `${this.#server.url}/api`;
  }

  /** The application's public key (developer portal → General Information), hex. */
  get publicKey(): string {
    return this.#primary.keys.publicKeyHex;
  }

  /**
   * Another bot in this Discord, with its own application, token, key and
   * interactions endpoint: it gets the messages of the servers it shares
   * with the others over its own Gateway session, and posts as itself.
   */
  addBot(options: {
    botToken: string;
    botUsername?: string;
    applicationId?: string;
  }): DiscordBotApp {
    if (this.#apps.has(options.botToken)) throw new Error("a bot with this token exists already");
    const app = this.#newApp(options);
    return { bot: app.bot, applicationId: app.applicationId, publicKey: app.keys.publicKeyHex };
  }

  /** Global application commands a bot registered (default: the primary bot's). */
  commandsOf(botId?: string): { name: string; description?: string }[] {
    return this.#app(botId).commands;
  }

  #newApp(options: { botToken: string; botUsername?: string; applicationId?: string }): DiscordApp {
    const applicationId = options.applicationId ?? snowflake();
    const app: DiscordApp = {
      token: options.botToken,
      bot: { id: applicationId, username: options.botUsername ?? "lobu", bot: true },
      applicationId,
      keys: interactionKeys(),
      interactionsUrl: undefined,
      commands: [],
    };
    this.#apps.set(app.token, app);
    return app;
  }

  /** A bot's application by its user id (default: the primary one). */
  #app(botId?: string): DiscordApp {
    if (botId === undefined) return this.#primary;
    for (const app of this.#apps.values()) if (app.bot.id === botId) return app;
    throw new Error(`no emulated bot ${botId}`);
  }

  get gateway(): DiscordGateway {
    return this.#gateway;
  }

  async close(): Promise<void> {
    this.#gateway.close();
    await this.#server?.close();
  }

  // ---------------------------------------------------------------- the world

  addGuild(name: string): { guildId: string; channelId: string } {
    const guildId = snowflake();
    this.guilds.set(guildId, { id: guildId, name });
    const channelId = snowflake();
    this.channels.set(channelId, { id: channelId, type: 0, guild_id: guildId, name: "general" });
    this.#gateway.dispatch("GUILD_CREATE", this.#guildCreate(guildId));
    return { guildId, channelId };
  }

  /** A public thread under a text channel. */
  addThread(parentId: string, name: string): string {
    const parent = this.channels.get(parentId);
    if (!parent?.guild_id) throw new Error(`no guild text channel ${parentId}`);
    const id = snowflake();
    const thread: DiscordChannel = {
      id,
      type: 11,
      guild_id: parent.guild_id,
      parent_id: parentId,
      name,
    };
    this.channels.set(id, thread);
    this.#gateway.dispatch("THREAD_CREATE", { ...thread, newly_created: true }, 1);
    return id;
  }

  /** The DM channel between a bot (default: the primary one) and `user` (made on first use, as Discord does). */
  dmChannel(user: DiscordUser, botId = this.bot.id): string {
    for (const c of this.channels.values())
      if (c.type === 1 && c.recipient?.id === user.id && (c.botId ?? this.bot.id) === botId)
        return c.id;
    const id = snowflake();
    this.channels.set(id, { id, type: 1, recipient: user, botId });
    return id;
  }

  // ---------------------------------------------------------------- acting as people

  /** A person writes in a channel (a DM channel, a guild channel or a thread). */
  userSends(
    author: DiscordUser,
    channelId: string,
    content: string,
    opts: { replyTo?: string; attachments?: DiscordMessage["attachments"] } = {},
  ): DiscordMessage {
    const channel = this.#channel(channelId);
    const message: DiscordMessage = {
      id: snowflake(),
      channel_id: channelId,
      ...(channel.guild_id ? { guild_id: channel.guild_id } : {}),
      author,
      content,
      components: [],
      edits: [],
      deleted: false,
      attachments: opts.attachments ?? [],
      ...(opts.replyTo ? { replyTo: opts.replyTo } : {}),
      timestamp: new Date().toISOString(),
    };
    this.#messages.push(message);
    this.#dispatchMessage(message);
    this.#signal.notify();
    return message;
  }

  /** The MESSAGE_CREATE for `message` again (a gateway that replays an event). */
  redispatch(message: DiscordMessage): void {
    this.#dispatchMessage(message);
  }

  /** A person clicks a button (by label) or picks a select option (by label) on a bot message. */
  click(user: DiscordUser, message: DiscordMessage, label: string): Promise<DiscordInteraction> {
    // The click goes to the application whose bot posted the message.
    const app = this.#app(message.author.id);
    for (const component of message.components.flatMap((row) => row.components ?? [])) {
      if (component.type === 2 && component.label === label && component.custom_id)
        return this.#interact(app, 3, user, message.channel_id, {
          message: this.#wire(message),
          data: { custom_id: component.custom_id, component_type: 2 },
        });
      const option = component.options?.find((o) => o.label === label);
      if (component.type === 3 && option && component.custom_id)
        return this.#interact(app, 3, user, message.channel_id, {
          message: this.#wire(message),
          data: { custom_id: component.custom_id, component_type: 3, values: [option.value] },
        });
    }
    throw new Error(`no button or option "${label}" on message ${message.id}`);
  }

  /** A person runs a slash command (`/lobu`) in a channel, of the primary bot or of bot `botId`. */
  slashCommand(
    user: DiscordUser,
    channelId: string,
    name: string,
    botId?: string,
  ): Promise<DiscordInteraction> {
    const app = this.#app(botId);
    const command = app.commands.find((c) => c.name === name);
    if (!command) throw new Error(`the bot registered no /${name}`);
    return this.#interact(app, 2, user, channelId, { data: { id: snowflake(), name, type: 1 } });
  }

  /**
   * Save the Interactions Endpoint URL as the developer portal does: Discord
   * sends a signed PING (expecting PONG) and a PING with a bad signature
   * (expecting 401), and refuses the URL otherwise.
   */
  async setInteractionsEndpoint(
    url: string,
    botId?: string,
  ): Promise<{ ok: boolean; reason?: string }> {
    const app = this.#app(botId);
    const body = JSON.stringify({
      id: snowflake(),
      application_id: app.applicationId,
      type: 1,
      token: "ping",
      version: 1,
    });
    const bot = app.bot.id;
    const good = await this.post(url, body, { bot });
    if (good.status !== 200 || JSON.parse(good.body || "{}").type !== 1)
      return { ok: false, reason: `a signed PING got ${good.status}` };
    const bad = await this.post(url, body, { forge: true, bot });
    if (bad.status !== 401) return { ok: false, reason: `a forged PING got ${bad.status}` };
    app.interactionsUrl = url;
    return { ok: true };
  }

  /** X-Signature-Ed25519 for `body` at `timestamp`, with the application's key (what a captured request carries). */
  sign(timestamp: string, body: string): string {
    return signInteraction(this.#primary.keys.privateKey, timestamp, body);
  }

  /**
   * POST a body to an interactions endpoint, signed with the primary
   * application's key or bot `bot`'s (or forged, or with a chosen timestamp).
   */
  post(
    url: string,
    body: string,
    opts: { forge?: boolean; timestamp?: string; signature?: string; bot?: string } = {},
  ): ReturnType<typeof postTo> {
    const timestamp = opts.timestamp ?? String(Math.floor(Date.now() / 1000));
    const key = opts.forge ? strangerKey() : this.#app(opts.bot).keys.privateKey;
    const signature = opts.signature ?? signInteraction(key, timestamp, body);
    return postTo(
      url,
      body,
      {
        "content-type": "application/json",
        "x-signature-ed25519": signature,
        "x-signature-timestamp": timestamp,
      },
      10_000,
    );
  }

  // ---------------------------------------------------------------- reading

  /** Messages in a channel as `viewer` sees them (ephemerals only their own), oldest first. */
  messages(channelId: string, viewer?: string): DiscordMessage[] {
    return this.#messages.filter(
      (m) =>
        m.channel_id === channelId && !m.deleted && (!m.ephemeralTo || m.ephemeralTo === viewer),
    );
  }

  message(id: string): DiscordMessage | undefined {
    return this.#messages.find((m) => m.id === id);
  }

  /** The next `times` calls to `route` (`PATCH /channels/:id/messages/:id`) get a 429. */
  forceRateLimit(route: string, opts: { retryAfter?: number; times?: number } = {}): void {
    const retryAfter = opts.retryAfter ?? 1;
    this.#failures.push(
      route,
      {
        status: 429,
        body: { message: "You are being rate limited.", retry_after: retryAfter, global: false },
        retryAfter,
      },
      opts.times ?? 1,
    );
  }

  waitFor<T>(predicate: () => T | undefined | null | false, opts?: WaitOptions): Promise<T> {
    return this.#signal.waitFor(predicate, opts);
  }

  // ---------------------------------------------------------------- internals

  #channel(id: string): DiscordChannel {
    const channel = this.channels.get(id);
    if (!channel) throw new Error(`unknown channel ${id}`);
    return channel;
  }

  #guildCreate(guildId: string): Record<string, unknown> {
    const guild = this.guilds.get(guildId);
    const channels = [...this.channels.values()].filter((c) => c.guild_id === guildId);
    return guildCreate(guildId, guild?.name ?? "guild", channels);
  }

  #wire(m: DiscordMessage): Record<string, unknown> {
    return wireMessage(m, this.bot, (id) => this.message(id), this.#server?.url ?? "");
  }

  #dispatchMessage(message: DiscordMessage): void {
    const wire = this.#wire(message);
    const isDm = !message.guild_id;
    const d = {
      ...wire,
      ...(message.guild_id ? { member: { roles: [], joined_at: message.timestamp } } : {}),
    };
    for (const app of this.#apps.values()) {
      // A DM is between one bot and one person: only that bot gets it.
      const channel = this.channels.get(message.channel_id);
      if (isDm && channel?.botId !== undefined && channel.botId !== app.bot.id) continue;
      const mentioned = (wire.mentions as DiscordUser[]).some((u) => u.id === app.bot.id);
      // Without the MESSAGE_CONTENT intent a guild message arrives with empty content, unless it mentions the bot.
      for (const withContent of [true, false]) {
        const intent = isDm ? Intents.DirectMessages : Intents.GuildMessages;
        const needs = isDm || mentioned ? 0 : Intents.MessageContent;
        this.#gateway.dispatch(
          "MESSAGE_CREATE",
          withContent ? d : { ...d, content: "", components: [] },
          withContent ? intent | needs : intent,
          app.token,
        );
        if (needs === 0) break;
      }
    }
  }

  async #interact(
    app: DiscordApp,
    type: number,
    user: DiscordUser,
    channelId: string,
    extra: Record<string, unknown>,
  ): Promise<DiscordInteraction> {
    const url = app.interactionsUrl;
    if (!url) throw new Error("no interactions endpoint: call setInteractionsEndpoint");
    const channel = this.#channel(channelId);
    const id = snowflake();
    const token = randomBytes(32).toString("base64url");
    const who = channel.guild_id
      ? {
          guild_id: channel.guild_id,
          member: { user, roles: [], permissions: "0", joined_at: new Date().toISOString() },
        }
      : { user };
    const body = JSON.stringify({
      id,
      application_id: app.applicationId,
      type,
      token,
      version: 1,
      channel_id: channelId,
      channel: { id: channelId, type: channel.type },
      locale: "en-US",
      app_permissions: "0",
      ...who,
      ...extra,
    });
    let answered = () => {};
    const hook: InteractionHook = {
      applicationId: app.applicationId,
      token,
      user,
      channelId,
      ...(channel.guild_id ? { guildId: channel.guild_id } : {}),
      bot: app.bot,
      at: Date.now(),
      answered: new Promise<void>((resolve) => {
        answered = resolve;
      }),
    };
    this.#hooks.set(token, hook);
    try {
      const res = await this.post(url, body, { bot: app.bot.id });
      let response: DiscordInteraction["response"];
      try {
        response = res.body ? JSON.parse(res.body) : undefined;
      } catch {
        response = undefined;
      }
      const interaction: DiscordInteraction = { id, token, type, status: res.status, response };
      this.interactions.push(interaction);
      if (res.status === 200 && response)
        hook.originalId = this.#applyResponse(app, response, user, channelId, extra, token);
      this.#signal.notify();
      return interaction;
    } finally {
      answered();
    }
  }

  /** Interaction `token` was sent `ms` ago (its webhook refuses calls after 15 minutes). */
  ageInteraction(token: string, ms: number): void {
    const hook = this.#hooks.get(token);
    if (!hook) throw new Error(`no interaction with token ${token}`);
    hook.at -= ms;
  }

  /**
   * What an interaction response does: a (maybe ephemeral) message (4), a
   * "thinking…" placeholder the app edits later through the webhook (5), or
   * an update of the clicked message (7). Returns the message it made.
   */
  #applyResponse(
    app: DiscordApp,
    response: NonNullable<DiscordInteraction["response"]>,
    user: DiscordUser,
    channelId: string,
    extra: Record<string, unknown>,
    token: string,
  ): string | undefined {
    const data = response.data ?? {};
    if (response.type === 4 || response.type === 5) {
      const flags = typeof data.flags === "number" ? data.flags : 0;
      const message: DiscordMessage = {
        id: snowflake(),
        channel_id: channelId,
        author: app.bot,
        content: response.type === 4 ? String(data.content ?? "") : "",
        components: response.type === 4 ? ((data.components as DiscordComponent[]) ?? []) : [],
        edits: [],
        deleted: false,
        attachments: [],
        ...(flags & EPHEMERAL ? { ephemeralTo: user.id } : {}),
        ...(response.type === 5 ? { deferred: true } : {}),
        interactionToken: token,
        timestamp: new Date().toISOString(),
      };
      this.#messages.push(message);
      return message.id;
    }
    const clicked = (extra.message as { id?: string } | undefined)?.id;
    const target = clicked ? this.message(clicked) : undefined;
    if (response.type === 7 && target) this.#edit(target, data);
    return undefined;
  }

  #edit(target: DiscordMessage, data: Record<string, unknown>): void {
    target.edits.push(target.content);
    if (typeof data.content === "string") target.content = data.content;
    if (Array.isArray(data.components)) target.components = data.components as DiscordComponent[];
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://emulator");
    const method = req.method ?? "GET";
    const raw = await readRaw(req);
    // The CDN: attachments need no token (their URLs are signed), as on cdn.discordapp.com.
    const cdn = /^\/attachments\/(\d+)\/(\d+)\/[^/]+$/.exec(url.pathname);
    if (method === "GET" && cdn) return this.#serveAttachment(cdn[1] ?? "", cdn[2] ?? "", res);
    // @discordjs/rest sends `@original` (and `@me`) percent-encoded; Discord reads both spellings.
    const path = url.pathname.replace(/^\/api\/v10/, "").replace(/%40/gi, "@");
    const route = `${method} ${path.replace(/\/\d{5,}/g, "/:id").replace(/\/webhooks\/:id\/[^/]+/, "/webhooks/:id/:token")}`;
    // JSON, or multipart with payload_json and files[n] (messages with attachments).
    const parsed = parseBody(raw, req.headers["content-type"]);
    let body: Record<string, unknown> = {};
    try {
      const json = parsed.kind === "multipart" ? parsed.fields.payload_json : raw.toString("utf8");
      body = json ? JSON.parse(json) : {};
    } catch {
      body = {};
    }
    if (parsed.files.length)
      body.__files = parsed.files.map((f) => ({
        filename: f.filename,
        contentType: f.contentType,
        data: f.data,
      }));
    const answer = (status: number, out: unknown, headers: Record<string, string> = {}) => {
      this.calls.push({ method, route, path, status, body });
      this.#signal.notify();
      if (status === 204) {
        res.writeHead(204, headers);
        res.end();
        return;
      }
      sendJson(res, status, out, headers);
    };
    if (!url.pathname.startsWith("/api/v10/"))
      return answer(404, { message: "404: Not Found", code: 0 });
    const isWebhook = path.startsWith("/webhooks/") || path.startsWith("/interactions/");
    const app = this.#apps.get((req.headers.authorization ?? "").replace(/^Bot /, ""));
    if (!isWebhook && !app) return answer(401, { message: "401: Unauthorized", code: 0 });
    const failure = this.#failures.take(route);
    if (failure) {
      const after = String(failure.retryAfter ?? 1);
      return answer(failure.status, failure.body, {
        "retry-after": after,
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset-after": after,
        "x-ratelimit-bucket": "emulated",
        "x-ratelimit-scope": "user",
      });
    }
    if (isWebhook) {
      const hit = await webhookRoute(this.#webhookWorld(), method, path, body);
      return hit ? answer(...hit) : answer(404, { message: "404: Not Found", code: 0 });
    }
    for (const [pattern, handler] of restRoutes(this.#restWorld(app ?? this.#primary))) {
      const m = `${method} ${path}`.match(pattern);
      if (m) {
        const [status, out] = handler(m, body, url.searchParams);
        return answer(
          status,
          out,
          status === 200
            ? {
                "x-ratelimit-limit": "5",
                "x-ratelimit-remaining": "4",
                "x-ratelimit-reset-after": "1",
                "x-ratelimit-bucket": "emulated",
              }
            : {},
        );
      }
    }
    answer(404, { message: "404: Not Found", code: 0 });
  }

  #serveAttachment(channelId: string, id: string, res: ServerResponse): void {
    for (const m of this.#messages) {
      if (m.channel_id !== channelId) continue;
      const n = m.attachments.findIndex((_, i) => attachmentId(m, i) === id);
      const a = m.attachments[n];
      if (!a) continue;
      this.cdnFetches.push(id);
      this.#signal.notify();
      res.writeHead(200, { "content-type": a.contentType, "content-length": a.data.length });
      res.end(a.data);
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("This content is no longer available.");
  }

  /** What the interaction webhook routes may see and change (webhooks.ts). */
  #webhookWorld(): WebhookWorld {
    return {
      hook: (token) => this.#hooks.get(token),
      message: (id) => this.message(id),
      add: (m) => {
        this.#messages.push(m);
      },
      edit: (target, data) => this.#edit(target, data),
      wire: (m) => this.#wire(m),
      now: () => Date.now(),
    };
  }

  /** What the REST routes may see and change (rest.ts). */
  #restWorld(app: DiscordApp): RestWorld {
    return {
      bot: app.bot,
      applicationId: app.applicationId,
      gatewayUrl: () => this.#gateway.url,
      channels: this.channels,
      setCommands: (list) => {
        app.commands = list;
        if (app === this.#primary) this.commands = list;
      },
      dmChannel: (user) => this.dmChannel(user, app.bot.id),
      message: (id) => this.message(id),
      all: () => this.#messages,
      add: (m) => {
        this.#messages.push(m);
      },
      edit: (target, data) => this.#edit(target, data),
      wire: (m) => this.#wire(m),
    };
  }
}
