/**
 * A Microsoft Teams / Bot Framework emulator. The channel side: activities
 * posted to the bot's messaging endpoint with a JWT signed exactly like the
 * Bot Framework connector's (RS256, issuer https://api.botframework.com,
 * audience the app id, a `serviceurl` claim, a key published in the OpenID
 * metadata's JWKS and endorsed for "msteams"). The bot side: the OpenID
 * metadata and JWKS, an Entra token endpoint (client credentials), and the
 * Bot Connector REST routes a bot calls (create a conversation, send, reply,
 * update and delete activities), with 429 + Retry-After on demand; and the
 * Microsoft Graph routes a bot reads files shared in channels and group chats
 * with (`/v1.0/shares/{shareId}/driveItem` and `…/content`, which redirects
 * to a pre-authenticated download URL) and reads channel and group chat
 * messages with (graph-messages.ts), accepting only a Graph token issued
 * to the bot for this tenant. Records what the bot sent.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { parseBody } from "../platform-kit/body.ts";
import { postTo } from "../platform-kit/deliver.ts";
import { type HttpServer, listen, readRaw, sendJson } from "../platform-kit/http.ts";
import { FailureQueue } from "../platform-kit/rate-limit.ts";
import { ChangeSignal, type WaitOptions } from "../platform-kit/signal.ts";
import { type GraphMessage, GraphMessageLog } from "./graph-messages.ts";
import type {
  ForgeOptions,
  TeamsAction,
  TeamsCall,
  TeamsConversation,
  TeamsDelivery,
  TeamsEmulatorOptions,
  TeamsMessage,
  TeamsPerson,
} from "./types.ts";

const ISSUER = "https://api.botframework.com";
const SCOPE = "https://api.botframework.com/.default";
const GRAPH_SCOPE = "https://graph.microsoft.com/.default";
const CARD = "application/vnd.microsoft.card.adaptive";
const FILE_DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info";

export async function startTeamsEmulator(options: TeamsEmulatorOptions): Promise<TeamsEmulator> {
  const emu = new TeamsEmulator(options);
  await emu.listen(options.port ?? 0);
  return emu;
}

type Key = {
  kid: string;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
  jwk: JWK;
};

async function newKey(): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  return {
    kid: randomBytes(12).toString("base64url"),
    privateKey,
    jwk: await exportJWK(publicKey),
  };
}

/** Text as Teams shows it: Markdown escapes and HTML entities resolved. */
function shown(text: string): string {
  return text
    .replace(/\\([\\*_~`[\]#>-])/g, "$1")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

function cardOf(activity: Record<string, unknown>): { text: string[]; actions: TeamsAction[] } {
  const attachments = (activity.attachments ?? []) as { contentType?: string; content?: unknown }[];
  const text: string[] = [];
  const actions: TeamsAction[] = [];
  for (const a of attachments) {
    if (a.contentType !== CARD) continue;
    const content = a.content as {
      body?: { type?: string; text?: string }[];
      actions?: TeamsAction[];
    };
    for (const block of content.body ?? [])
      if (block.type === "TextBlock" && block.text) text.push(block.text);
    actions.push(...(content.actions ?? []));
  }
  return { text, actions };
}

export class TeamsEmulator {
  readonly calls: TeamsCall[] = [];
  readonly messages: TeamsMessage[] = [];
  /** Typing activities, by conversation. */
  readonly typing: string[] = [];
  /** What invokes answered with a message (shown only to the clicker). */
  readonly invokeNotes: { userId: string; text: string }[] = [];
  /** Files people sent, fetched by the bot: which, and whether a bot token came with the request. */
  readonly fileFetches: { id: string; withToken: boolean }[] = [];
  readonly #options: TeamsEmulatorOptions;
  readonly #signal = new ChangeSignal();
  readonly #files = new Map<string, { data: Buffer; mimeType: string; tempauth: string }>();
  readonly #opened = new Map<string, Buffer>();
  readonly #failures = new FailureQueue<number>();
  readonly #tokens = new Set<string>();
  /** Graph tokens, apart from the Connector's: neither works on the other API. */
  readonly #graphTokens = new Set<string>();
  /** Shared files by their SharePoint URL: the file's id and who created it (Entra object id). */
  readonly #shared = new Map<string, { id: string; createdBy: string; name: string }>();
  readonly #aad = new Map<string, string>();
  #graphWrites = true;
  /** Every message posted in channels and chats, as Graph reads them. */
  readonly #graph = new GraphMessageLog();
  /** Files the bot uploaded into a channel's files through Graph. */
  readonly channelFiles: {
    channel: string;
    name: string;
    data: Buffer;
    mimeType: string;
    webUrl: string;
  }[] = [];
  /** The team every channel here belongs to (its Microsoft 365 group id, as Graph names it). */
  readonly teamGroupId = randomUUID();
  #server?: HttpServer;
  #key!: Key;
  #foreign!: Key;
  #unendorsed!: Key;
  #botUrl: string | undefined;

  constructor(options: TeamsEmulatorOptions) {
    this.#options = options;
  }

  /** @internal Started by startTeamsEmulator. */
  async listen(port: number): Promise<void> {
    [this.#key, this.#foreign, this.#unendorsed] = await Promise.all([
      newKey(),
      newKey(),
      newKey(),
    ]);
    this.#server = await listen((req, res) => this.#route(req, res), port);
  }

  get url(): string {
    if (!this.#server) throw new Error("Teams emulator is not listening");
    return this.#server.url;
  }
  /** Stands in for https://login.botframework.com/v1/.well-known/openidconfiguration. */
  get openIdMetadataUrl(): string {
    return `${this.url}/v1/.well-known/openidconfiguration`;
  }
  /** Stands in for https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token. */
  get tokenUrl(): string {
    return `${this.url}/botframework.com/oauth2/v2.0/token`;
  }
  /** The serviceUrl activities name (Teams': https://smba.trafficmanager.net/amer/). */
  get serviceUrl(): string {
    return `${this.url}/amer/`;
  }
  /** Stands in for https://graph.microsoft.com/v1.0. */
  get graphUrl(): string {
    return `${this.url}/v1.0`;
  }
  get tenantId(): string {
    return this.#options.tenantId ?? "72f988bf-86f1-41af-91ab-2d7cd011db47";
  }
  get bot(): { id: string; name: string } {
    return { id: `28:${this.#options.appId}`, name: this.#options.botName ?? "Lobu" };
  }

  async close(): Promise<void> {
    await this.#server?.close();
  }

  /** The bot's messaging endpoint (Azure Bot → Configuration). */
  setMessagingEndpoint(url: string): void {
    this.#botUrl = url;
  }

  // ------------------------------------------------------------ conversations

  personal(person: TeamsPerson): TeamsConversation {
    return { id: `a:1${Buffer.from(person.id).toString("base64url")}`, type: "personal" };
  }
  groupChat(name: string): TeamsConversation {
    return { id: `19:${Buffer.from(name).toString("hex")}@thread.v2`, type: "groupChat" };
  }
  channel(name: string): TeamsConversation {
    return { id: `19:${Buffer.from(name).toString("hex")}@thread.tacv2`, type: "channel" };
  }
  /** The reply chain under a channel message. */
  thread(channel: TeamsConversation, rootId: string): TeamsConversation {
    return { id: `${channel.id};messageid=${rootId}`, type: "channel" };
  }

  /** The bot's messages in a conversation, oldest first (a channel's threads included when `withThreads`). */
  messagesIn(conversationId: string, opts: { withThreads?: boolean } = {}): TeamsMessage[] {
    return this.messages.filter(
      (m) =>
        !m.deleted &&
        (m.conversationId === conversationId ||
          (opts.withThreads && m.conversationId.startsWith(`${conversationId};messageid=`))),
    );
  }

  message(id: string): TeamsMessage | undefined {
    return this.messages.find((m) => m.id === id);
  }

  // ------------------------------------------------------------ channel side

  /** An activity from `person` in `conversation`, as the connector posts it. */
  activity(
    person: TeamsPerson,
    conversation: TeamsConversation,
    fields: Record<string, unknown>,
  ): Record<string, unknown> {
    return {
      type: "message",
      id: this.#graph.nextId(),
      timestamp: new Date().toISOString(),
      localTimestamp: new Date().toISOString(),
      channelId: "msteams",
      serviceUrl: this.serviceUrl,
      from: { id: person.id, name: person.name, aadObjectId: this.aadObjectId(person) },
      conversation: {
        id: conversation.id,
        conversationType: conversation.type,
        tenantId: this.tenantId,
        ...(conversation.type !== "personal" ? { isGroup: true } : {}),
      },
      recipient: this.bot,
      channelData: {
        tenant: { id: this.tenantId },
        ...(conversation.type === "channel"
          ? {
              team: { id: "19:team@thread.tacv2", aadGroupId: this.teamGroupId },
              channel: { id: conversation.id.split(";")[0] },
            }
          : {}),
      },
      ...fields,
    };
  }

  /**
   * The team or group chat withdraws the bot's consent to read its messages
   * (`ChannelMessage.Read.Group` / `ChatMessage.Read.Chat`): Graph answers 403
   * there. `false` grants it again.
   */
  denyHistory(conversation: TeamsConversation, deny = true): void {
    this.#graph.deny(conversation.id.split(";")[0] ?? conversation.id, deny);
  }

  /**
   * `person` posts `text` (and shares files, listed by name) without
   * mentioning the bot: Teams does not send it to the bot, but Graph has it.
   * Answers the message's id (a thread's post: `thread(channel, id)`).
   */
  userPosts(
    person: TeamsPerson,
    conversation: TeamsConversation,
    text: string,
    opts: { files?: string[] } = {},
  ): string {
    const id = this.#graph.nextId();
    this.#graph.add(
      conversation.id,
      id,
      { user: { id: this.aadObjectId(person), displayName: person.name } },
      `<p>${escapeHtml(text)}</p>`,
      (opts.files ?? []).map((name) => ({
        id: randomUUID(),
        contentType: "reference",
        name,
        contentUrl: `${this.url}/sites/team/Shared%20Documents/General/${encodeURIComponent(name)}`,
      })),
    );
    return id;
  }

  /** Graph refuses uploads (403), as without the Files.ReadWrite.All permission; `false` allows them again. */
  denyGraphWrites(deny = true): void {
    this.#graphWrites = !deny;
  }

  /** A person's Entra object id: theirs, or one made up once and kept. */
  aadObjectId(person: TeamsPerson): string {
    if (person.aadObjectId) return person.aadObjectId;
    let id = this.#aad.get(person.id);
    if (!id) {
      id = randomUUID();
      this.#aad.set(person.id, id);
    }
    return id;
  }

  /** A JWT like the connector's for this bot (or a forged one). */
  async token(forge: ForgeOptions = {}): Promise<string> {
    const key = forge.foreignKey
      ? this.#foreign
      : forge.unendorsedKey
        ? this.#unendorsed
        : this.#key;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ serviceurl: forge.serviceUrl ?? this.serviceUrl })
      .setProtectedHeader({ alg: "RS256", kid: key.kid, x5t: key.kid, typ: "JWT" })
      .setIssuer(forge.issuer ?? ISSUER)
      .setAudience(forge.audience ?? this.#options.appId)
      .setNotBefore(now - 300)
      .setExpirationTime(now + (forge.expiresInSec ?? 3600))
      .sign(key.privateKey);
  }

  /** POST an activity to the bot with `token` (none: no Authorization header). */
  async post(raw: string, token: string | undefined): Promise<TeamsDelivery> {
    if (!this.#botUrl) throw new Error("no messaging endpoint: call setMessagingEndpoint first");
    const res = await postTo(
      this.#botUrl,
      raw,
      {
        "content-type": "application/json; charset=utf-8",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      20_000,
    );
    return { status: res.status, body: res.body, raw, token, activity: JSON.parse(raw) };
  }

  /** Sign and send an activity, as the connector does. */
  async send(activity: Record<string, unknown>, forge?: ForgeOptions): Promise<TeamsDelivery> {
    this.#recordSent(activity);
    return this.post(JSON.stringify(activity), await this.token(forge));
  }

  /** `person` writes `text` (in a channel or group chat, mentioning the bot). */
  userSends(
    person: TeamsPerson,
    conversation: TeamsConversation,
    text: string,
    forge?: ForgeOptions,
  ): Promise<TeamsDelivery> {
    const mention = conversation.type === "personal" ? "" : `<at>${this.bot.name}</at> `;
    return this.send(
      this.activity(person, conversation, {
        text: `${mention}${text}`,
        textFormat: "plain",
        ...(mention
          ? {
              entities: [
                { type: "mention", text: `<at>${this.bot.name}</at>`, mentioned: this.bot },
              ],
            }
          : {}),
      }),
      forge,
    );
  }

  /**
   * `person` sends a file with `text`. In a 1:1 chat Teams uploads it to the
   * person's OneDrive and sends `file.download.info` with a pre-authenticated
   * `downloadUrl` (no token needed); `inline` pastes a picture instead, sent
   * as an `image/*` attachment whose `contentUrl` is on the Bot Connector
   * (the bot's token needed).
   */
  userSendsFile(
    person: TeamsPerson,
    conversation: TeamsConversation,
    text: string,
    file: { name: string; data: Buffer; mimeType: string },
    opts: { inline?: boolean } = {},
  ): Promise<TeamsDelivery> {
    const id = randomUUID();
    const tempauth = randomBytes(24).toString("base64url");
    this.#files.set(id, { data: file.data, mimeType: file.mimeType, tempauth });
    const attachment = opts.inline
      ? {
          contentType: file.mimeType,
          contentUrl: `${this.serviceUrl}v3/attachments/${id}/views/original`,
          name: file.name,
        }
      : {
          contentType: FILE_DOWNLOAD_INFO,
          contentUrl: `${this.url}/personal/Documents/Microsoft%20Teams%20Chat%20Files/${encodeURIComponent(file.name)}`,
          name: file.name,
          content: {
            downloadUrl: `${this.url}/download/${id}?tempauth=${tempauth}`,
            uniqueId: id,
            fileType: file.name.split(".").pop() ?? "",
          },
        };
    return this.send(
      this.activity(person, conversation, {
        text,
        textFormat: "plain",
        attachments: [attachment, { contentType: "text/html", content: `<p>${text}</p>` }],
      }),
    );
  }

  /**
   * `person` sends a file in a channel or group chat (mentioning the bot):
   * Teams uploads it to the team's SharePoint site (or the sender's
   * OneDrive) and sends a `reference` attachment with its URL, which only
   * Graph opens. `createdBy` is who uploaded it (default: the sender), as a
   * crafted message could name someone else's file.
   */
  userSharesFile(
    person: TeamsPerson,
    conversation: TeamsConversation,
    text: string,
    file: { name: string; data: Buffer; mimeType: string },
    opts: { createdBy?: TeamsPerson } = {},
  ): Promise<TeamsDelivery> {
    const id = randomUUID();
    const tempauth = randomBytes(24).toString("base64url");
    this.#files.set(id, { data: file.data, mimeType: file.mimeType, tempauth });
    const url = `${this.url}/sites/team/Shared%20Documents/General/${id}/${encodeURIComponent(file.name)}`;
    this.#shared.set(url, {
      id,
      name: file.name,
      createdBy: this.aadObjectId(opts.createdBy ?? person),
    });
    const mention = `<at>${this.bot.name}</at>`;
    return this.send(
      this.activity(person, conversation, {
        text: `${mention} ${text}`,
        textFormat: "plain",
        entities: [{ type: "mention", text: mention, mentioned: this.bot }],
        attachments: [
          { contentType: "reference", contentUrl: url, name: file.name },
          { contentType: "text/html", content: `<p>${mention} ${text}</p>` },
        ],
      }),
    );
  }

  /** A person opens `url` (a link the bot sent) in their browser; `opened` has what it served. */
  async open(url: string): Promise<void> {
    const res = await fetch(url);
    if (res.ok) this.#opened.set(url, Buffer.from(await res.arrayBuffer()));
    this.#signal.notify();
  }

  /** What opening `url` downloaded, once `open` finished. */
  opened(url: string): Buffer | undefined {
    return this.#opened.get(url);
  }

  /**
   * `person` clicks the action titled `title` on `message`: Action.Execute
   * invokes `adaptiveCard/action` and shows the card it answers with (card
   * refresh); Action.Submit (or `as: "submit"`, a client without Universal
   * Actions) posts a message whose value is the action's data.
   */
  async click(
    person: TeamsPerson,
    message: TeamsMessage,
    title: string,
    opts: { as?: "submit" } = {},
  ): Promise<TeamsDelivery> {
    const action = message.actions.find((a) => a.title === title);
    if (!action) throw new Error(`no action "${title}" on ${message.id}`);
    const conversation: TeamsConversation = {
      id: message.conversationId,
      type: message.conversationId.startsWith("a:")
        ? "personal"
        : message.conversationId.endsWith("@thread.v2")
          ? "groupChat"
          : "channel",
    };
    if (opts.as === "submit" || action.type === "Action.Submit")
      return this.send(
        this.activity(person, conversation, { value: action.data, replyToId: message.id }),
      );
    const delivery = await this.send(
      this.activity(person, conversation, {
        type: "invoke",
        name: "adaptiveCard/action",
        replyToId: message.id,
        value: {
          action: { type: "Action.Execute", verb: action.verb, data: action.data },
          trigger: "manual",
        },
      }),
    );
    if (delivery.status === 200 && delivery.body) {
      const answer = JSON.parse(delivery.body) as { type?: string; value?: unknown };
      if (answer.type === CARD)
        this.#show(message, {
          ...message.activity,
          attachments: [{ contentType: CARD, content: answer.value }],
        });
      else if (typeof answer.value === "string")
        this.invokeNotes.push({ userId: person.id, text: answer.value });
      this.#signal.notify();
    }
    return delivery;
  }

  // ------------------------------------------------------------ bot side

  /** The next call to `route` (`PUT activity`, `POST activity`, `POST reply`) gets a 429 with Retry-After. */
  forceRateLimit(route: string, retryAfterSec = 1): void {
    this.#failures.push(route, retryAfterSec);
  }

  waitFor<T>(check: () => T | undefined | null | false, opts?: WaitOptions): Promise<T> {
    return this.#signal.waitFor(check, opts);
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method === "GET" && path === "/v1/.well-known/openidconfiguration")
      return sendJson(res, 200, {
        issuer: ISSUER,
        authorization_endpoint: "https://invalid.botframework.com",
        jwks_uri: `${this.url}/v1/.well-known/keys`,
        id_token_signing_alg_values_supported: ["RS256"],
        token_endpoint_auth_methods_supported: ["private_key_jwt"],
      });
    if (req.method === "GET" && path === "/v1/.well-known/keys")
      return sendJson(res, 200, {
        keys: [
          {
            ...this.#key.jwk,
            kid: this.#key.kid,
            use: "sig",
            x5t: this.#key.kid,
            endorsements: ["msteams", "skype", "webchat"],
          },
          {
            ...this.#unendorsed.jwk,
            kid: this.#unendorsed.kid,
            use: "sig",
            endorsements: ["webchat"],
          },
        ],
      });
    const download = /^\/download\/([0-9a-f-]{36})$/.exec(path);
    if (req.method === "GET" && download) {
      // OneDrive's pre-authenticated URL: its tempauth is the authority, no token.
      const file = this.#files.get(download[1] ?? "");
      const tempauth = new URL(req.url ?? "/", "http://x").searchParams.get("tempauth");
      if (!file || tempauth !== file.tempauth)
        return sendJson(res, 401, { error: "invalid tempauth" });
      this.fileFetches.push({ id: download[1] ?? "", withToken: !!req.headers.authorization });
      this.#signal.notify();
      res.writeHead(200, { "content-type": file.mimeType, "content-length": file.data.length });
      res.end(file.data);
      return;
    }
    const folder = /^\/v1\.0\/teams\/([^/]+)\/channels\/([^/]+)\/filesFolder$/.exec(path);
    if (req.method === "GET" && folder)
      return this.#filesFolderRoute(
        req,
        res,
        decodeURIComponent(folder[1] ?? ""),
        decodeURIComponent(folder[2] ?? ""),
      );
    const upload = /^\/v1\.0\/drives\/([^/]+)\/items\/([^/]+):\/([^/]+):\/content$/.exec(path);
    if (req.method === "PUT" && upload)
      return this.#uploadRoute(
        req,
        res,
        decodeURIComponent(upload[2] ?? ""),
        decodeURIComponent(upload[3] ?? ""),
      );
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "GET" && /^\/v1\.0\/(teams|chats)\/[^/]+\/.*messages/.test(path)) {
      const route = "GET messages";
      if (!this.#graphAuthorized(req, res, route)) return;
      const answer = this.#graph.route(path, url.searchParams, this.teamGroupId, this.graphUrl);
      if (answer) {
        this.calls.push({ method: "GET", route, status: answer[0] });
        this.#signal.notify();
        return sendJson(res, answer[0], answer[1]);
      }
    }
    const graph = /^\/v1\.0\/shares\/([^/]+)\/driveItem(\/content)?$/.exec(path);
    if (req.method === "GET" && graph)
      return this.#graphRoute(req, res, graph[1] ?? "", !!graph[2]);
    const inline = /^\/amer\/v3\/attachments\/([0-9a-f-]{36})\/views\/original$/.exec(path);
    if (req.method === "GET" && inline) {
      const file = this.#files.get(inline[1] ?? "");
      const auth = req.headers.authorization ?? "";
      if (!this.#tokens.has(auth.replace(/^Bearer /, "")))
        return sendJson(res, 401, {
          error: {
            code: "Unauthorized",
            message: "Authorization has been denied for this request.",
          },
        });
      if (!file)
        return sendJson(res, 404, { error: { code: "NotFound", message: "no attachment" } });
      this.fileFetches.push({ id: inline[1] ?? "", withToken: true });
      this.#signal.notify();
      res.writeHead(200, { "content-type": file.mimeType, "content-length": file.data.length });
      res.end(file.data);
      return;
    }
    const body = parseBody(await readRaw(req), req.headers["content-type"]);
    const tokenPath = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path);
    if (req.method === "POST" && tokenPath)
      return this.#tokenRoute(decodeURIComponent(tokenPath[1] ?? ""), body.fields, res);
    const m = /^\/amer\/v3\/conversations(?:\/([^/]+)\/activities(?:\/([^/]+))?)?\/?$/.exec(path);
    if (!m) return sendJson(res, 404, { error: { code: "NotFound", message: `no route ${path}` } });
    const auth = req.headers.authorization ?? "";
    if (!this.#tokens.has(auth.replace(/^Bearer /, "")))
      return sendJson(res, 401, {
        error: { code: "Unauthorized", message: "Authorization has been denied for this request." },
      });
    const conversationId = m[1] ? decodeURIComponent(m[1]) : undefined;
    const activityId = m[2] ? decodeURIComponent(m[2]) : undefined;
    const json = (body.json ?? {}) as Record<string, unknown>;
    const route = !conversationId
      ? "POST conversation"
      : `${req.method} ${req.method === "POST" && activityId ? "reply" : "activity"}`;
    const call = (status: number) => {
      this.calls.push({
        method: req.method ?? "",
        route,
        ...(conversationId ? { conversationId } : {}),
        status,
      });
      this.#signal.notify();
    };
    const limited = this.#failures.take(route);
    if (limited !== undefined) {
      call(429);
      return sendJson(
        res,
        429,
        { error: { code: "TooManyRequests", message: "Too many requests" } },
        { "retry-after": String(limited) },
      );
    }
    if (!conversationId) {
      const member = (json.members as { id?: string }[] | undefined)?.[0]?.id;
      if (!member) {
        call(400);
        return sendJson(res, 400, {
          error: { code: "BadArgument", message: "members is required" },
        });
      }
      call(201);
      return sendJson(res, 201, { id: this.personal({ id: member, name: "" }).id });
    }
    if (req.method === "POST") {
      if (json.type === "typing") {
        this.typing.push(conversationId);
        call(200);
        return sendJson(res, 200, {});
      }
      const id = this.#graph.nextId();
      const replyTo = activityId ?? (json.replyToId as string | undefined);
      this.messages.push({
        id,
        conversationId,
        ...(replyTo ? { replyTo } : {}),
        text: "",
        actions: [],
        edits: [],
        deleted: false,
        activity: json,
      });
      this.#show(this.messages.at(-1) as TeamsMessage, json, false);
      this.#graph.add(
        conversationId,
        id,
        { application: { id: this.#options.appId, displayName: this.bot.name } },
        botHtml(this.messages.at(-1) as TeamsMessage),
        cardOf(json).text.length ? [{ id: randomUUID(), contentType: CARD }] : [],
      );
      call(201);
      return sendJson(res, 201, { id });
    }
    const message = activityId ? this.message(activityId) : undefined;
    if (!message || message.conversationId !== conversationId) {
      call(404);
      return sendJson(res, 404, {
        error: { code: "ActivityNotFoundInConversation", message: "no such activity" },
      });
    }
    if (req.method === "PUT") {
      this.#show(message, json);
      this.#graph.edit(message.id, botHtml(message));
    } else if (req.method === "DELETE") {
      message.deleted = true;
      this.#graph.remove(message.id);
    }
    call(200);
    return sendJson(res, 200, { id: message.id });
  }

  /**
   * Entra's client-credentials grant: a Connector token (any tenant path, as
   * multi-tenant bots use `botframework.com`), or a Graph token, issued only
   * by this tenant's endpoint (Graph tokens come from the tenant whose data
   * they read).
   */
  #tokenRoute(tenant: string, form: Record<string, string>, res: ServerResponse): void {
    const client =
      form.grant_type === "client_credentials" &&
      form.client_id === this.#options.appId &&
      form.client_secret === this.#options.appPassword;
    const graph = form.scope === GRAPH_SCOPE;
    const ok = client && (form.scope === SCOPE || (graph && tenant === this.tenantId));
    this.calls.push({
      method: "POST",
      route: graph ? "POST graph token" : "POST token",
      status: ok ? 200 : 401,
    });
    if (!ok) {
      sendJson(res, client ? 400 : 401, {
        error: client ? "invalid_request" : "invalid_client",
        error_description: client
          ? `AADSTS90002: Tenant '${tenant}' not found, or the scope is not one this app may ask for.`
          : "AADSTS7000215: Invalid client secret provided.",
      });
      return;
    }
    const token = randomBytes(32).toString("base64url");
    (graph ? this.#graphTokens : this.#tokens).add(token);
    sendJson(res, 200, {
      token_type: "Bearer",
      expires_in: 3599,
      ext_expires_in: 3599,
      access_token: token,
    });
  }

  /** Whether a request carries a Graph token; answers 401 when not. */
  #graphAuthorized(req: IncomingMessage, res: ServerResponse, route: string): boolean {
    if (this.#graphTokens.has((req.headers.authorization ?? "").replace(/^Bearer /, "")))
      return true;
    this.calls.push({ method: req.method ?? "", route, status: 401 });
    sendJson(res, 401, {
      error: { code: "InvalidAuthenticationToken", message: "Access token validation failure." },
    });
    return false;
  }

  /** Graph's `GET /teams/{team}/channels/{channel}/filesFolder`: the channel's folder in the team's drive. */
  #filesFolderRoute(
    req: IncomingMessage,
    res: ServerResponse,
    team: string,
    channel: string,
  ): void {
    const route = "GET filesFolder";
    if (!this.#graphAuthorized(req, res, route)) return;
    const known = team === this.teamGroupId && channel.endsWith("@thread.tacv2");
    this.calls.push({ method: "GET", route, status: known ? 200 : 404 });
    if (!known) {
      sendJson(res, 404, { error: { code: "NotFound", message: "No team found with Group Id" } });
      return;
    }
    sendJson(res, 200, {
      id: `folder-${Buffer.from(channel).toString("hex")}`,
      name: "General",
      parentReference: { driveId: `b!${Buffer.from(team).toString("base64url")}` },
    });
  }

  /** Graph's simple upload, `PUT /drives/{drive}/items/{parent}:/{name}:/content`, into a channel's folder. */
  async #uploadRoute(
    req: IncomingMessage,
    res: ServerResponse,
    parent: string,
    name: string,
  ): Promise<void> {
    const route = "PUT upload";
    const data = await readRaw(req);
    if (!this.#graphAuthorized(req, res, route)) return;
    if (!this.#graphWrites) {
      this.calls.push({ method: "PUT", route, status: 403 });
      sendJson(res, 403, { error: { code: "accessDenied", message: "Access denied" } });
      return;
    }
    const channel = Buffer.from(parent.replace(/^folder-/, ""), "hex").toString();
    const taken = this.channelFiles.filter((f) => f.channel === channel && f.name === name).length;
    const stored = taken ? name.replace(/(\.[^.]*)?$/, ` ${taken}$1`) : name;
    const webUrl = `${this.url}/sites/team/Shared%20Documents/General/${encodeURIComponent(stored)}`;
    this.channelFiles.push({
      channel,
      name: stored,
      data,
      mimeType: req.headers["content-type"] ?? "application/octet-stream",
      webUrl,
    });
    this.calls.push({ method: "PUT", route, status: 201 });
    this.#signal.notify();
    sendJson(res, 201, { id: randomUUID(), name: stored, size: data.length, webUrl });
  }

  /** Graph's `GET /shares/{id}/driveItem` (metadata) and `…/content` (a redirect to the file). */
  #graphRoute(req: IncomingMessage, res: ServerResponse, shareId: string, content: boolean): void {
    const route = content ? "GET driveItem content" : "GET driveItem";
    const auth = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      this.calls.push({ method: "GET", route, status });
      this.#signal.notify();
      if (status === 302) {
        res.writeHead(302, headers);
        res.end();
        return;
      }
      sendJson(res, status, body, headers);
    };
    if (!this.#graphTokens.has(auth)) {
      answer(401, {
        error: { code: "InvalidAuthenticationToken", message: "Access token validation failure." },
      });
      return;
    }
    const url = shareId.startsWith("u!")
      ? Buffer.from(shareId.slice(2), "base64url").toString()
      : "";
    const file = this.#shared.get(url);
    const stored = file && this.#files.get(file.id);
    if (!file || !stored) {
      answer(404, {
        error: { code: "itemNotFound", message: "The resource could not be found." },
      });
      return;
    }
    if (content) {
      answer(302, undefined, {
        location: `${this.url}/download/${file.id}?tempauth=${stored.tempauth}`,
      });
      return;
    }
    answer(200, {
      id: file.id,
      name: file.name,
      size: stored.data.length,
      file: { mimeType: stored.mimeType },
      createdBy: { user: { id: file.createdBy, displayName: "" } },
    });
  }

  /** A person's message activity is a message in Graph too (a click or an invoke is not). */
  #recordSent(activity: Record<string, unknown>): void {
    const conversation = activity.conversation as { id?: string; conversationType?: string };
    const from = activity.from as { id: string; name?: string; aadObjectId?: string };
    if (activity.type !== "message" || activity.value !== undefined || !conversation?.id) return;
    if (conversation.conversationType === "personal") return;
    const mention = `<at>${this.bot.name}</at>`;
    const text = typeof activity.text === "string" ? activity.text : "";
    const html = `<p>${escapeHtml(text).replaceAll(escapeHtml(mention), `<at id="0">${escapeHtml(this.bot.name)}</at>`)}</p>`;
    const attachments = ((activity.attachments ?? []) as Record<string, unknown>[])
      .filter((a) => a.contentType === "reference")
      .map((a) => ({
        id: randomUUID(),
        contentType: "reference",
        name: String(a.name ?? ""),
        contentUrl: String(a.contentUrl ?? ""),
      }));
    this.#graph.add(
      conversation.id,
      String(activity.id),
      { user: { id: from.aadObjectId ?? from.id, displayName: from.name ?? "" } },
      html,
      attachments,
    );
  }

  #show(message: TeamsMessage, activity: Record<string, unknown>, edit = true): void {
    if (edit) message.edits.push({ text: message.text, actions: message.actions });
    const card = cardOf(activity);
    const text = typeof activity.text === "string" ? shown(activity.text) : "";
    message.text = [text, ...card.text].filter(Boolean).join("\n\n");
    message.actions = card.actions;
    message.activity = activity;
  }
}

function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** The HTML body Graph shows for a message the bot sent (its text as Teams shows it). */
function botHtml(message: TeamsMessage): GraphMessage["body"]["content"] {
  return message.text
    .split("\n")
    .map((line) => `<p>${escapeHtml(line)}</p>`)
    .join("");
}
