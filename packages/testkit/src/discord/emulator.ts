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
import { attachmentId, EPHEMERAL, guildCreate, snowflake, wireMessage } from "./wire.ts";

const Intents = { GuildMessages: 1 << 9, DirectMessages: 1 << 12, MessageContent: 1 << 15 };

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

  readonly #options: DiscordEmulatorOptions;
  readonly #keys: InteractionKeys = interactionKeys();
  readonly #signal = new ChangeSignal();
  readonly #failures = new FailureQueue<{ status: number; body: unknown; retryAfter?: number }>();
  readonly #messages: DiscordMessage[] = [];
  readonly #gateway: DiscordGateway;
  #server?: HttpServer;
  #interactionsUrl: string | undefined;

  constructor(options: DiscordEmulatorOptions) {
    this.#options = options;
    this.applicationId = options.applicationId ?? snowflake();
    this.bot = { id: this.applicationId, username: options.botUsername ?? "lobu", bot: true };
    this.#gateway = new DiscordGateway({
      token: options.botToken,
      ready: (sessionId, resumeUrl) => ({
        v: 10,
        user: { ...this.bot, discriminator: "0", global_name: null, avatar: null, flags: 0 },
        guilds: [...this.guilds.keys()].map((id) => ({ id, unavailable: true })),
        session_id: sessionId,
        resume_gateway_url: resumeUrl,
        shard: [0, 1],
        application: { id: this.applicationId, flags: 0 },
      }),
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
    return this.#keys.publicKeyHex;
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

  /** The DM channel between the bot and `user` (made on first use, as Discord does). */
  dmChannel(user: DiscordUser): string {
    for (const c of this.channels.values())
      if (c.type === 1 && c.recipient?.id === user.id) return c.id;
    const id = snowflake();
    this.channels.set(id, { id, type: 1, recipient: user });
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
    for (const component of message.components.flatMap((row) => row.components ?? [])) {
      if (component.type === 2 && component.label === label && component.custom_id)
        return this.#interact(3, user, message.channel_id, {
          message: this.#wire(message),
          data: { custom_id: component.custom_id, component_type: 2 },
        });
      const option = component.options?.find((o) => o.label === label);
      if (component.type === 3 && option && component.custom_id)
        return this.#interact(3, user, message.channel_id, {
          message: this.#wire(message),
          data: { custom_id: component.custom_id, component_type: 3, values: [option.value] },
        });
    }
    throw new Error(`no button or option "${label}" on message ${message.id}`);
  }

  /** A person runs a slash command (`/lobu`) in a channel. */
  slashCommand(user: DiscordUser, channelId: string, name: string): Promise<DiscordInteraction> {
    const command = this.commands.find((c) => c.name === name);
    if (!command) throw new Error(`the bot registered no /${name}`);
    return this.#interact(2, user, channelId, { data: { id: snowflake(), name, type: 1 } });
  }

  /**
   * Save the Interactions Endpoint URL as the developer portal does: Discord
   * sends a signed PING (expecting PONG) and a PING with a bad signature
   * (expecting 401), and refuses the URL otherwise.
   */
  async setInteractionsEndpoint(url: string): Promise<{ ok: boolean; reason?: string }> {
    const body = JSON.stringify({
      id: snowflake(),
      application_id: this.applicationId,
      type: 1,
      token: "ping",
      version: 1,
    });
    const good = await this.post(url, body);
    if (good.status !== 200 || JSON.parse(good.body || "{}").type !== 1)
      return { ok: false, reason: `a signed PING got ${good.status}` };
    const bad = await this.post(url, body, { forge: true });
    if (bad.status !== 401) return { ok: false, reason: `a forged PING got ${bad.status}` };
    this.#interactionsUrl = url;
    return { ok: true };
  }

  /** X-Signature-Ed25519 for `body` at `timestamp`, with the application's key (what a captured request carries). */
  sign(timestamp: string, body: string): string {
    return signInteraction(this.#keys.privateKey, timestamp, body);
  }

  /** POST a body to the interactions endpoint, signed (or forged, or with a chosen timestamp). */
  post(
    url: string,
    body: string,
    opts: { forge?: boolean; timestamp?: string; signature?: string } = {},
  ): ReturnType<typeof postTo> {
    const timestamp = opts.timestamp ?? String(Math.floor(Date.now() / 1000));
    const key = opts.forge ? strangerKey() : this.#keys.privateKey;
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
    const mentioned = (wire.mentions as DiscordUser[]).some((u) => u.id === this.bot.id);
    const d = {
      ...wire,
      ...(message.guild_id ? { member: { roles: [], joined_at: message.timestamp } } : {}),
    };
    // Without the MESSAGE_CONTENT intent a guild message arrives with empty content, unless it mentions the bot.
    for (const withContent of [true, false]) {
      const intent = isDm ? Intents.DirectMessages : Intents.GuildMessages;
      const needs = isDm || mentioned ? 0 : Intents.MessageContent;
      this.#gateway.dispatch(
        "MESSAGE_CREATE",
        withContent ? d : { ...d, content: "", components: [] },
        withContent ? intent | needs : intent,
      );
      if (needs === 0) break;
    }
  }

  async #interact(
    type: number,
    user: DiscordUser,
    channelId: string,
    extra: Record<string, unknown>,
  ): Promise<DiscordInteraction> {
    const url = this.#interactionsUrl;
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
      application_id: this.applicationId,
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
    const res = await this.post(url, body);
    let response: DiscordInteraction["response"];
    try {
      response = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      response = undefined;
    }
    const interaction: DiscordInteraction = { id, token, type, status: res.status, response };
    this.interactions.push(interaction);
    if (res.status === 200 && response) this.#applyResponse(response, user, channelId, extra);
    this.#signal.notify();
    return interaction;
  }

  /** What an interaction response does: a (maybe ephemeral) message, or an update of the clicked one. */
  #applyResponse(
    response: NonNullable<DiscordInteraction["response"]>,
    user: DiscordUser,
    channelId: string,
    extra: Record<string, unknown>,
  ): void {
    const data = response.data ?? {};
    if (response.type === 4) {
      const flags = typeof data.flags === "number" ? data.flags : 0;
      this.#messages.push({
        id: snowflake(),
        channel_id: channelId,
        author: this.bot,
        content: String(data.content ?? ""),
        components: (data.components as DiscordComponent[]) ?? [],
        edits: [],
        deleted: false,
        attachments: [],
        ...(flags & EPHEMERAL ? { ephemeralTo: user.id } : {}),
        timestamp: new Date().toISOString(),
      });
    }
    const clicked = (extra.message as { id?: string } | undefined)?.id;
    const target = clicked ? this.message(clicked) : undefined;
    if (response.type === 7 && target) this.#edit(target, data);
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
    const path = url.pathname.replace(/^\/api\/v10/, "");
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
    if (!isWebhook && req.headers.authorization !== `Bot ${this.#options.botToken}`)
      return answer(401, { message: "401: Unauthorized", code: 0 });
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
    for (const [pattern, handler] of restRoutes(this.#restWorld())) {
      const m = `${method} ${path}`.match(pattern);
      if (m) {
        const [status, out] = handler(m, body);
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

  /** What the REST routes may see and change (rest.ts). */
  #restWorld(): RestWorld {
    return {
      bot: this.bot,
      applicationId: this.applicationId,
      gatewayUrl: () => this.#gateway.url,
      channels: this.channels,
      setCommands: (list) => {
        this.commands = list;
      },
      dmChannel: (user) => this.dmChannel(user),
      message: (id) => this.message(id),
      add: (m) => {
        this.#messages.push(m);
      },
      edit: (target, data) => this.#edit(target, data),
      wire: (m) => this.#wire(m),
    };
  }
}
