/**
 * A Google Chat emulator: the Chat API routes an app writes with
 * (spaces.messages create / update / patch / delete, with Google's error
 * bodies and 429 RESOURCE_EXHAUSTED; media.download of the files people
 * attach) and the one it reads history with (spaces.messages.list, by
 * thread, newest or oldest first, paged, only with the admin-approved
 * chat.app.messages.readonly scope), the OAuth token endpoint its service
 * account's JWT grant goes to (the assertion's signature checked with the
 * test service account's public key), the published signing keys (JWKS),
 * and events posted to the app's HTTP endpoint with a bearer token signed as
 * Chat signs it (project-number or endpoint-URL audience).
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { jwtVerify } from "jose";
import { parseBody } from "../platform-kit/body.ts";
import { postTo } from "../platform-kit/deliver.ts";
import { type HttpServer, listen, readRaw, sendJson } from "../platform-kit/http.ts";
import { FailureQueue } from "../platform-kit/rate-limit.ts";
import { ChangeSignal, type WaitOptions } from "../platform-kit/signal.ts";
import {
  CHAT_ISSUER,
  chatClaims,
  GOOGLE_TOKEN_URL,
  jwksOf,
  rsaKey,
  type SigningKey,
  signToken,
} from "./tokens.ts";
import type {
  AudienceMode,
  ChatCardWithId,
  ChatPerson,
  ChatSpace,
  GoogleChatAttachment,
  GoogleChatCall,
  GoogleChatDelivery,
  GoogleChatDialog,
  GoogleChatEmulatorOptions,
  GoogleChatMessage,
} from "./types.ts";

const APP_USER = "users/app";
const CHAT_SCOPE = "https://www.googleapis.com/auth/chat.bot";
/** App authentication's read scope: a Workspace admin approves it for the app. */
const READ_SCOPE = "https://www.googleapis.com/auth/chat.app.messages.readonly";
/** Chat's limit on a message's text, in characters. */
export const TEXT_LIMIT = 4096;
const CHAT_JWKS_PATH = `/service_accounts/v1/jwk/${CHAT_ISSUER}`;
const ID_JWKS_PATH = "/oauth2/v3/certs";

export async function startGoogleChatEmulator(
  options: GoogleChatEmulatorOptions,
): Promise<GoogleChatEmulator> {
  const emu = new GoogleChatEmulator(options);
  await emu.listen(options.port ?? 0);
  return emu;
}

type Failure = { status: number; body: unknown };

export class GoogleChatEmulator {
  readonly calls: GoogleChatCall[] = [];
  readonly deliveries: GoogleChatDelivery[] = [];
  /** Dialogs the app opened, oldest first. */
  readonly dialogs: GoogleChatDialog[] = [];
  readonly spaces = new Map<string, ChatSpace>();
  /** The app's service account key file (JSON), as the app is given it. */
  readonly serviceAccountKey: string;
  readonly serviceAccountEmail = "lobu-chat@lobu-test.iam.gserviceaccount.com";

  readonly #options: GoogleChatEmulatorOptions;
  readonly #chatKey = rsaKey();
  readonly #idKey = rsaKey();
  readonly #strangerKey = rsaKey();
  readonly #saPublicKey;
  /** Access tokens and the scopes each was granted. */
  readonly #accessTokens = new Map<string, string[]>();
  #readApproved = true;
  readonly #signal = new ChangeSignal();
  readonly #failures = new FailureQueue<Failure>();
  readonly #messages: GoogleChatMessage[] = [];
  readonly #opened = new Map<string, Buffer>();
  #server?: HttpServer;
  #endpoint: string | undefined;
  #audienceUrl = "";
  #seq = 0;
  #last = { iat: 0, exp: 0 };

  constructor(options: GoogleChatEmulatorOptions) {
    this.#options = options;
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.#saPublicKey = publicKey;
    this.serviceAccountKey = JSON.stringify({
      type: "service_account",
      project_id: "lobu-test",
      client_email: this.serviceAccountEmail,
      private_key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      token_uri: GOOGLE_TOKEN_URL,
    });
  }

  /** @internal Started by startGoogleChatEmulator. */
  async listen(port: number): Promise<void> {
    this.#server = await listen((req, res) => this.#route(req, res), port);
  }

  get url(): string {
    if (!this.#server) throw new Error("the Google Chat emulator is not listening");
    return this.#server.url;
  }

  get audience(): AudienceMode {
    return this.#options.audience ?? "project-number";
  }

  /** Where the app reads the keys of its configured audience mode. */
  get certsUrl(): string {
    return `${this.url}${this.audience === "project-number" ? CHAT_JWKS_PATH : ID_JWKS_PATH}`;
  }

  get tokenUrl(): string {
    return `${this.url}/token`;
  }

  async close(): Promise<void> {
    await this.#server?.close();
  }

  /**
   * The app's HTTP endpoint URL (Chat API configuration). `audience` is the
   * URL as configured, when the app is reached at another address (a proxy
   * in front of it, as in tests); endpoint-URL tokens name it.
   */
  setEndpoint(url: string, audience = url): void {
    this.#endpoint = url;
    this.#audienceUrl = audience;
  }

  /** The DM between a person and the app. */
  dmSpace(person: ChatPerson): string {
    const name = `spaces/dm${person.id}`;
    if (!this.spaces.has(name))
      this.spaces.set(name, { name, spaceType: "DIRECT_MESSAGE", singleUserBotDm: true });
    return name;
  }

  /** A named space (a room) the app was added to. */
  space(id: string, displayName = id): string {
    const name = `spaces/${id}`;
    if (!this.spaces.has(name)) this.spaces.set(name, { name, spaceType: "SPACE", displayName });
    return name;
  }

  // ---- what people do ----

  /**
   * A person writes in a space. In a DM the app gets every message; in a
   * space only those that @mention it (`mention`), with `argumentText`
   * without the mention. `thread` continues a thread, else a new one starts.
   */
  async userSends(
    person: ChatPerson,
    space: string,
    text: string,
    opts: {
      thread?: string;
      mention?: boolean;
      /** Files attached to the message (uploaded content, fetched with media.download). */
      attachments?: { name: string; mimeType: string; data: Buffer }[];
    } = {},
  ): Promise<GoogleChatDelivery & { message: GoogleChatMessage }> {
    const message = this.#store({
      space,
      text: opts.mention ? `@Lobu ${text}` : text,
      sender: `users/${person.id}`,
      senderName: person.displayName ?? `Person ${person.id}`,
      ...(opts.thread ? { thread: opts.thread } : {}),
    });
    if (opts.attachments?.length)
      message.attachments = opts.attachments.map((a) => ({
        contentName: a.name,
        contentType: a.mimeType,
        resourceName: randomBytes(24).toString("base64url"),
        data: a.data,
      }));
    if (!opts.mention && this.spaces.get(space)?.spaceType !== "DIRECT_MESSAGE")
      return {
        status: 0,
        body: "",
        event: "",
        token: "",
        error: "not delivered: in a space Chat sends an app only the messages that mention it",
        message,
      };
    const event = this.#event("MESSAGE", person, space, {
      message: { ...this.#wire(message), argumentText: opts.mention ? ` ${text}` : text },
    });
    const delivery = await this.deliver(event);
    await this.#respond(delivery, space, message.thread, person);
    return { ...delivery, message };
  }

  /** A person runs a slash command (`/lobu`). */
  async slashCommand(
    person: ChatPerson,
    space: string,
    commandId: number,
  ): Promise<GoogleChatDelivery> {
    const message = this.#store({ space, text: "/lobu", sender: `users/${person.id}` });
    const event = this.#event("MESSAGE", person, space, {
      message: {
        ...this.#wire(message),
        argumentText: "",
        slashCommand: { commandId: String(commandId) },
        annotations: [
          {
            type: "SLASH_COMMAND",
            startIndex: 0,
            length: 5,
            slashCommand: { commandId: String(commandId), commandName: "/lobu", type: "INVOKE" },
          },
        ],
      },
    });
    const delivery = await this.deliver(event);
    await this.#respond(delivery, space, message.thread, person);
    return delivery;
  }

  /** A person opens a link button's URL (a file's download link) in their browser. */
  async open(url: string): Promise<void> {
    const res = await fetch(url);
    if (res.ok) this.#opened.set(url, Buffer.from(await res.arrayBuffer()));
    this.#signal.notify();
  }

  /** What opening `url` downloaded, once `open` finished. */
  opened(url: string): Buffer | undefined {
    return this.#opened.get(url);
  }

  /** A person clicks the button `label` of a card on `message`. */
  async click(
    person: ChatPerson,
    message: GoogleChatMessage,
    label: string,
  ): Promise<GoogleChatDelivery> {
    const button = buttonsOf(message.cardsV2).find((b) => b.text === label && b.onClick?.action);
    if (!button?.onClick?.action) throw new Error(`no button "${label}" on ${message.name}`);
    const action = button.onClick.action;
    const parameters = action.parameters ?? [];
    const event = this.#event("CARD_CLICKED", person, message.space, {
      message: this.#wire(message),
      action: { actionMethodName: action.function, parameters },
      common: {
        invokedFunction: action.function,
        parameters: Object.fromEntries(parameters.map((p) => [p.key, p.value])),
      },
    });
    const delivery = await this.deliver(event);
    await this.#respond(
      delivery,
      message.space,
      message.thread,
      person,
      message,
      action.interaction,
    );
    return delivery;
  }

  /** POST an event (JSON) to the endpoint with a freshly signed token, as Chat does. */
  async deliver(event: unknown): Promise<GoogleChatDelivery> {
    return this.post(JSON.stringify(event), await this.token());
  }

  /** A bearer token as Chat signs it; `claims` and `signer` make forgeries. */
  async token(
    claims: Record<string, unknown> = {},
    signer: "chat" | "google-id" | "stranger" = this.audience === "project-number"
      ? "chat"
      : "google-id",
  ): Promise<string> {
    const audience =
      this.audience === "project-number" ? this.#options.projectNumber : this.#audienceUrl;
    const key: SigningKey =
      signer === "chat" ? this.#chatKey : signer === "google-id" ? this.#idKey : this.#strangerKey;
    // Each request gets a token of its own: one signed in the same second as the last differs in its expiry.
    const base = chatClaims(this.audience, audience);
    const sameSecond = base.iat === this.#last.iat;
    this.#last = { iat: Number(base.iat), exp: sameSecond ? this.#last.exp - 1 : Number(base.exp) };
    return signToken(key, { ...base, exp: this.#last.exp, ...claims });
  }

  /** POST exact bytes with `token` (undefined: no Authorization header); recorded. */
  async post(event: string, token: string | undefined): Promise<GoogleChatDelivery> {
    if (!this.#endpoint) throw new Error("no endpoint: call setEndpoint first");
    const res = await postTo(
      this.#endpoint,
      event,
      {
        "content-type": "application/json",
        "user-agent": "Google-Dynamite",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      35_000,
    );
    const delivery: GoogleChatDelivery = {
      status: res.status,
      body: res.body,
      event,
      token: token ?? "",
      ...(res.error ? { error: res.error } : {}),
    };
    this.deliveries.push(delivery);
    this.#signal.notify();
    return delivery;
  }

  // ---- what tests read ----

  /** Messages in a space as `viewer` sees them (private ones only theirs), oldest first. */
  messages(space: string, viewer?: string): GoogleChatMessage[] {
    const me = viewer ? `users/${viewer}` : undefined;
    return this.#messages.filter(
      (m) => m.space === space && !m.deleted && (!m.privateViewer || m.privateViewer === me),
    );
  }

  message(name: string): GoogleChatMessage | undefined {
    return this.#messages.find((m) => m.name === name);
  }

  /** The next `times` calls of `route` (`POST messages`, `PUT message`, ...) get 429 RESOURCE_EXHAUSTED. */
  forceRateLimit(route: string, times = 1): void {
    this.#failures.push(
      route,
      {
        status: 429,
        body: {
          error: {
            code: 429,
            message: "Resource has been exhausted (e.g. check quota).",
            status: "RESOURCE_EXHAUSTED",
          },
        },
      },
      times,
    );
  }

  waitFor<T>(predicate: () => T | undefined | null | false, opts?: WaitOptions): Promise<T> {
    return this.#signal.waitFor(predicate, opts);
  }

  // ---- internals ----

  #store(fields: {
    space: string;
    text: string;
    sender: string;
    senderName?: string;
    thread?: string;
    cardsV2?: ChatCardWithId[];
    privateViewer?: string;
  }): GoogleChatMessage {
    const id = `${Date.now().toString(36)}.${(++this.#seq).toString(36)}${randomBytes(3).toString("hex")}`;
    const message: GoogleChatMessage = {
      name: `${fields.space}/messages/${id}`,
      space: fields.space,
      thread: fields.thread ?? `${fields.space}/threads/${randomBytes(6).toString("hex")}`,
      text: fields.text,
      cardsV2: fields.cardsV2 ?? [],
      sender: fields.sender,
      ...(fields.senderName ? { senderName: fields.senderName } : {}),
      ...(fields.privateViewer ? { privateViewer: fields.privateViewer } : {}),
      edits: [],
      deleted: false,
      at: Date.now(),
    };
    this.#messages.push(message);
    this.#signal.notify();
    return message;
  }

  #attachment(resourceName: string): GoogleChatAttachment | undefined {
    for (const m of this.#messages)
      for (const a of m.attachments ?? []) if (a.resourceName === resourceName) return a;
    return undefined;
  }

  #wire(m: GoogleChatMessage): Record<string, unknown> {
    return {
      name: m.name,
      text: m.text,
      ...(m.cardsV2.length ? { cardsV2: m.cardsV2 } : {}),
      ...(m.attachments?.length
        ? {
            attachment: m.attachments.map((a, i) => ({
              name: `${m.name}/attachments/${i}`,
              contentName: a.contentName,
              contentType: a.contentType,
              attachmentDataRef: { resourceName: a.resourceName },
              source: "UPLOADED_CONTENT",
            })),
          }
        : {}),
      thread: { name: m.thread },
      space: { name: m.space },
      sender: {
        name: m.sender,
        type: m.sender === APP_USER ? "BOT" : "HUMAN",
        ...(m.senderName ? { displayName: m.senderName } : {}),
      },
      createTime: new Date(m.at).toISOString(),
    };
  }

  #event(
    type: string,
    person: ChatPerson,
    space: string,
    fields: Record<string, unknown>,
  ): Record<string, unknown> {
    const s = this.spaces.get(space);
    if (!s) throw new Error(`unknown space ${space}`);
    return {
      type,
      eventTime: new Date().toISOString(),
      user: {
        name: `users/${person.id}`,
        displayName: person.displayName ?? `Person ${person.id}`,
        type: "HUMAN",
      },
      space: { ...s, type: s.spaceType === "DIRECT_MESSAGE" ? "DM" : "ROOM" },
      ...fields,
    };
  }

  /** What Chat does with the app's synchronous answer to an event. */
  async #respond(
    delivery: GoogleChatDelivery,
    space: string,
    thread: string,
    person: ChatPerson,
    clicked?: GoogleChatMessage,
    interaction?: string,
  ): Promise<void> {
    if (delivery.status !== 200) return;
    let answer: {
      text?: string;
      cardsV2?: ChatCardWithId[];
      actionResponse?: { type?: string; dialogAction?: { dialog?: GoogleChatDialog["dialog"] } };
      privateMessageViewer?: { name?: string };
    };
    try {
      answer = JSON.parse(delivery.body || "{}");
    } catch {
      return;
    }
    const type = answer.actionResponse?.type;
    if (type === "DIALOG") {
      // Chat opens a dialog only from a button that asked for one.
      const dialog = answer.actionResponse?.dialogAction?.dialog;
      if (interaction !== "OPEN_DIALOG" || !dialog)
        throw new Error("a dialog from a button that cannot open one");
      this.dialogs.push({ viewer: `users/${person.id}`, dialog });
      this.#signal.notify();
      return;
    }
    if (type === "UPDATE_MESSAGE" && clicked) {
      clicked.edits.push(clicked.text);
      if (answer.text !== undefined) clicked.text = answer.text;
      if (answer.cardsV2 !== undefined) clicked.cardsV2 = answer.cardsV2;
      this.#signal.notify();
      return;
    }
    if (answer.text === undefined && !answer.cardsV2?.length) return;
    const viewer = answer.privateMessageViewer?.name;
    if (viewer && viewer !== `users/${person.id}`)
      throw new Error("a private answer to someone else");
    this.#store({
      space,
      thread,
      text: answer.text ?? "",
      sender: APP_USER,
      ...(answer.cardsV2 ? { cardsV2: answer.cardsV2 } : {}),
      ...(viewer ? { privateViewer: viewer } : {}),
    });
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://emulator");
    const method = req.method ?? "GET";
    if (method === "GET" && url.pathname === CHAT_JWKS_PATH)
      return sendJson(res, 200, await jwksOf(this.#chatKey));
    if (method === "GET" && url.pathname === ID_JWKS_PATH)
      return sendJson(res, 200, await jwksOf(this.#idKey));
    const body = parseBody(await readRaw(req), req.headers["content-type"]);
    if (method === "POST" && url.pathname === "/token") return this.#grant(res, body.fields);
    const media = /^\/v1\/media\/(.+)$/.exec(url.pathname);
    const messages = /^\/v1\/(spaces\/[^/]+)\/messages$/.exec(url.pathname);
    const one = /^\/v1\/(spaces\/[^/]+)\/messages\/([^/]+)$/.exec(url.pathname);
    const route = media
      ? `${method} media`
      : messages
        ? `${method} messages`
        : one
          ? `${method === "PATCH" ? "PUT" : method} message`
          : "";
    const record = (status: number, errorStatus?: string) => {
      this.calls.push({
        method,
        route,
        path: url.pathname,
        status,
        body: body.json ?? null,
        ...(errorStatus ? { errorStatus } : {}),
      });
      this.#signal.notify();
    };
    const fail = (status: number, errorStatus: string, message: string) => {
      record(status, errorStatus);
      sendJson(res, status, { error: { code: status, message, status: errorStatus } });
    };
    if (!route) return fail(404, "NOT_FOUND", `no route ${method} ${url.pathname}`);
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const scopes = auth ? this.#accessTokens.get(auth) : undefined;
    if (!scopes)
      return fail(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
    // Reading takes the read scope (and the admin's approval of it); writing takes chat.bot.
    const reading = method === "GET" && !!messages;
    if (!scopes.includes(reading ? READ_SCOPE : CHAT_SCOPE))
      return fail(403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.");
    if (reading && !this.#readApproved)
      return fail(
        403,
        "PERMISSION_DENIED",
        "This Chat app is not authorized to use the scope chat.app.messages.readonly: a Workspace administrator must approve it.",
      );
    const forced = this.#failures.take(route);
    if (forced) {
      record(forced.status, "RESOURCE_EXHAUSTED");
      return sendJson(res, forced.status, forced.body);
    }
    if (media) {
      // media.download: the bytes of an attachment a person sent (alt=media).
      const name = decodeURIComponent(media[1] ?? "");
      const file = this.#attachment(name);
      if (method !== "GET" || url.searchParams.get("alt") !== "media" || !file)
        return fail(404, "NOT_FOUND", "Media not found.");
      record(200);
      res.writeHead(200, {
        "content-type": file.contentType,
        "content-length": String(file.data.length),
      });
      res.end(file.data);
      return;
    }
    const json = (body.json ?? {}) as {
      text?: string;
      cardsV2?: ChatCardWithId[];
      thread?: { name?: string };
      privateMessageViewer?: { name?: string };
    };
    if (messages?.[1] && method === "GET") {
      const answer = this.#list(messages[1], url.searchParams);
      if (answer[0] !== 200) {
        const [status, errorStatus, message] = answer as [number, string, string];
        return fail(status, errorStatus, message);
      }
      record(200);
      return sendJson(res, 200, answer[1]);
    }
    if (messages?.[1]) {
      const space = this.spaces.get(messages[1]);
      if (method !== "POST") return fail(405, "INVALID_ARGUMENT", "method not allowed");
      if (!space) return fail(404, "NOT_FOUND", "Space not found.");
      if ((json.text ?? "").length > TEXT_LIMIT)
        return fail(400, "INVALID_ARGUMENT", `Message text exceeds ${TEXT_LIMIT} characters.`);
      if (!json.text && !json.cardsV2?.length)
        return fail(400, "INVALID_ARGUMENT", "Message must have text or cards.");
      const viewer = json.privateMessageViewer?.name;
      if (viewer && space.spaceType === "DIRECT_MESSAGE")
        return fail(
          400,
          "INVALID_ARGUMENT",
          "Private messages are not supported in direct messages.",
        );
      // Without a reply option Chat starts a new thread and ignores the one named.
      const option = url.searchParams.get("messageReplyOption");
      let thread: string | undefined;
      if (option && option !== "MESSAGE_REPLY_OPTION_UNSPECIFIED" && json.thread?.name) {
        const known = this.#messages.some(
          (m) => m.thread === json.thread?.name && m.space === space.name,
        );
        if (known) thread = json.thread.name;
        else if (option === "REPLY_MESSAGE_OR_FAIL")
          return fail(404, "NOT_FOUND", "Thread not found.");
      }
      const stored = this.#store({
        space: space.name,
        text: json.text ?? "",
        sender: APP_USER,
        ...(thread ? { thread } : {}),
        ...(json.cardsV2 ? { cardsV2: json.cardsV2 } : {}),
        ...(viewer ? { privateViewer: viewer } : {}),
      });
      record(200);
      return sendJson(res, 200, this.#wire(stored));
    }
    const name = `${one?.[1]}/messages/${one?.[2]}`;
    const target = this.#messages.find((m) => m.name === name && !m.deleted);
    if (!target) return fail(404, "NOT_FOUND", "Message not found.");
    if (target.sender !== APP_USER)
      return fail(403, "PERMISSION_DENIED", "An app can only change its own messages.");
    if (method === "DELETE") {
      target.deleted = true;
      record(200);
      return sendJson(res, 200, {});
    }
    if (method !== "PUT" && method !== "PATCH")
      return fail(405, "INVALID_ARGUMENT", "method not allowed");
    const mask = (url.searchParams.get("updateMask") ?? "").split(",").filter(Boolean);
    if (mask.length === 0) return fail(400, "INVALID_ARGUMENT", "updateMask is required.");
    if (mask.includes("text") && (json.text ?? "").length > TEXT_LIMIT)
      return fail(400, "INVALID_ARGUMENT", `Message text exceeds ${TEXT_LIMIT} characters.`);
    target.edits.push(target.text);
    if (mask.includes("text")) target.text = json.text ?? "";
    if (mask.includes("cardsV2") || mask.includes("cards_v2")) target.cardsV2 = json.cardsV2 ?? [];
    record(200);
    return sendJson(res, 200, this.#wire(target));
  }

  /**
   * spaces.messages.list: a space's messages the app may see (not deleted,
   * not someone else's private ones), `filter=thread.name = "…"` (quoted or
   * not) for one thread, `orderBy` createTime asc (default) or desc,
   * `pageSize` 1–1000 (default 25), `pageToken` from the previous page.
   * Answers [200, body] or [status, errorStatus, message].
   */
  #list(spaceName: string, q: URLSearchParams): [200, unknown] | [number, string, string] {
    if (!this.spaces.has(spaceName)) return [404, "NOT_FOUND", "Space not found."];
    const filter = (q.get("filter") ?? "").trim();
    const byThread = /^thread\.name\s*=\s*"?(spaces\/[^"\s]+)"?$/.exec(filter);
    if (filter && !byThread) return [400, "INVALID_ARGUMENT", `Invalid filter: ${filter}`];
    const order = (q.get("orderBy") ?? "createTime asc").trim().toLowerCase();
    if (order !== "createtime asc" && order !== "createtime desc" && order !== "createtime")
      return [400, "INVALID_ARGUMENT", `Invalid orderBy: ${order}`];
    const size = Number(q.get("pageSize") ?? 25);
    if (!Number.isInteger(size) || size < 0) return [400, "INVALID_ARGUMENT", "Invalid pageSize."];
    const pageSize = Math.min(size || 25, 1000);
    const token = q.get("pageToken");
    const offset = token ? Number(Buffer.from(token, "base64url").toString()) : 0;
    if (!Number.isInteger(offset) || offset < 0)
      return [400, "INVALID_ARGUMENT", "Invalid page token."];
    const list = this.#messages.filter(
      (m) =>
        m.space === spaceName &&
        !m.deleted &&
        !m.privateViewer &&
        (!byThread || m.thread === byThread[1]),
    );
    if (order.endsWith("desc")) list.reverse();
    const page = list.slice(offset, offset + pageSize);
    const more = offset + pageSize < list.length;
    return [
      200,
      {
        messages: page.map((m) => this.#wire(m)),
        ...(more
          ? { nextPageToken: Buffer.from(String(offset + pageSize)).toString("base64url") }
          : {}),
      },
    ];
  }

  /** A Workspace admin approves (or, with `false`, revokes) the app's chat.app.messages.readonly scope. */
  approveMessageReading(approved = true): void {
    this.#readApproved = approved;
  }

  /** The service account's JWT bearer grant: the assertion must be signed with its key. */
  async #grant(res: ServerResponse, fields: Record<string, string>): Promise<void> {
    const refuse = (error: string, description: string) => {
      this.calls.push({
        method: "POST",
        route: "POST token",
        path: "/token",
        status: 400,
        body: null,
        errorStatus: error,
      });
      this.#signal.notify();
      sendJson(res, 400, { error, error_description: description });
    };
    if (fields.grant_type !== "urn:ietf:params:oauth:grant-type:jwt-bearer" || !fields.assertion)
      return refuse("unsupported_grant_type", "Invalid grant_type.");
    let scope = "";
    try {
      const { payload } = await jwtVerify(fields.assertion, this.#saPublicKey, {
        issuer: this.serviceAccountEmail,
        audience: GOOGLE_TOKEN_URL,
        algorithms: ["RS256"],
      });
      scope = String(payload.scope ?? "");
    } catch {
      return refuse("invalid_grant", "Invalid JWT Signature.");
    }
    const granted = scope.split(" ").filter((s) => s === CHAT_SCOPE || s === READ_SCOPE);
    if (!granted.length) return refuse("invalid_scope", "Chat scope missing.");
    const token = `ya29.${randomBytes(24).toString("base64url")}`;
    this.#accessTokens.set(token, granted);
    this.calls.push({
      method: "POST",
      route: "POST token",
      path: "/token",
      status: 200,
      body: null,
    });
    sendJson(res, 200, { access_token: token, expires_in: 3599, token_type: "Bearer" });
  }
}

/** Every button of a message's cards. */
export function buttonsOf(cards: ChatCardWithId[]) {
  return cards.flatMap((c) =>
    (c.card?.sections ?? []).flatMap((s) =>
      (s.widgets ?? []).flatMap((w) => w.buttonList?.buttons ?? []),
    ),
  );
}
