/**
 * A WhatsApp Cloud API emulator: the Graph API routes a bot uses
 * (POST /<version>/<phone-number-id>/messages for messages, read receipts
 * and the typing indicator; /media to upload, /<media-id> and its URL to
 * download), with the Cloud API's limits, error codes and the 24-hour
 * customer-service window; and the webhook side: notifications signed with
 * the app secret (X-Hub-Signature-256) exactly like Meta's, redelivered
 * after a non-200, and the verification handshake.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { parseBody } from "../platform-kit/body.ts";
import { type DeliveryResponse, postTo } from "../platform-kit/deliver.ts";
import { type HttpServer, listen, readRaw, sendJson, sendText } from "../platform-kit/http.ts";
import { FailureQueue } from "../platform-kit/rate-limit.ts";
import { ChangeSignal, type WaitOptions } from "../platform-kit/signal.ts";
import {
  type GraphError,
  graphErrorBody,
  INVALID_TOKEN,
  invalidParameter,
  RATE_LIMITS,
  ReadReceipt,
  SendMessage,
  WINDOW_CLOSED,
} from "./graph-api.ts";
import { duplicateIds, sentOf } from "./sent.ts";
import type {
  WhatsAppCall,
  WhatsAppDelivery,
  WhatsAppEmulatorOptions,
  WhatsAppPerson,
  WhatsAppReceipt,
  WhatsAppSent,
} from "./types.ts";

const WINDOW_MS = 24 * 3_600_000;
const VERSION = /^v\d{1,3}\.\d{1,2}$/;

export async function startWhatsAppEmulator(
  options: WhatsAppEmulatorOptions,
): Promise<WhatsAppEmulator> {
  const emu = new WhatsAppEmulator(options);
  await emu.listen(options.port ?? 0);
  return emu;
}

/** Sign a webhook body as Meta does: "sha256=" + hex HMAC-SHA256(app secret, raw body). */
export function signWhatsAppBody(appSecret: string, body: string | Buffer): string {
  return `sha256=${createHmac("sha256", appSecret).update(body).digest("hex")}`;
}

/** Every route ends in exactly one answer. */
type Answered = true;
type Answer = (status: number, body: unknown, call?: Partial<WhatsAppCall>) => Answered;
type Refuse = (e: GraphError, call?: Partial<WhatsAppCall>) => Answered;

const wamid = () => `wamid.${randomBytes(24).toString("base64url")}`;

export class WhatsAppEmulator {
  /** Every Graph API call, in arrival order. */
  readonly calls: WhatsAppCall[] = [];
  /** Every message the bot sent, in order. */
  readonly sent: WhatsAppSent[] = [];
  readonly receipts: WhatsAppReceipt[] = [];
  readonly deliveries: WhatsAppDelivery[] = [];

  readonly #options: WhatsAppEmulatorOptions;
  readonly #signal = new ChangeSignal();
  readonly #failures = new FailureQueue<GraphError>();
  /** Each person's last message to the business (the window runs 24 hours from it). */
  readonly #lastInbound = new Map<string, number>();
  readonly #inboundIds = new Set<string>();
  readonly #media = new Map<string, { data: Buffer; mimeType: string; filename?: string }>();
  /** Where media lookups say a file is (tests of where the token may go); the emulator by default. */
  #mediaBase: string | undefined;
  #webhookUrl: string | undefined;
  #server?: HttpServer;

  constructor(options: WhatsAppEmulatorOptions) {
    this.#options = options;
    this.#webhookUrl = options.webhookUrl;
  }

  /** @internal Started by startWhatsAppEmulator. */
  async listen(port: number): Promise<void> {
    this.#server = await listen(async (req, res) => {
      await this.#route(req, res);
    }, port);
  }

  /** Base URL standing in for https://graph.facebook.com. */
  get url(): string {
    if (!this.#server) throw new Error("WhatsApp emulator is not listening");
    return this.#server.url;
  }

  async close(): Promise<void> {
    await this.#server?.close();
  }

  // ---------------------------------------------------------------- webhook side

  /**
   * The handshake Meta makes when a callback URL is saved in the app
   * dashboard; the URL is kept only when the app echoes the challenge.
   */
  async verifyWebhook(
    url: string,
    verifyToken: string,
  ): Promise<{ ok: boolean; status: number; body: string }> {
    const challenge = String(Math.floor(Math.random() * 1e9));
    const query = new URLSearchParams({
      "hub.mode": "subscribe",
      "hub.verify_token": verifyToken,
      "hub.challenge": challenge,
    });
    const res = await fetch(`${url}?${query}`);
    const body = await res.text();
    const ok = res.status === 200 && body === challenge;
    if (ok) this.#webhookUrl = url;
    return { ok, status: res.status, body };
  }

  /** A person sends a text message to the business number; resolves with the first delivery's answer. */
  userSends(
    person: WhatsAppPerson,
    text: string,
    opts: { timestampSec?: number; replyTo?: string } = {},
  ): Promise<WhatsAppDelivery> {
    return this.#inbound(person, { type: "text", text: { body: text } }, opts);
  }

  /** A person taps a reply button or list row of `message` (by its title). */
  userTaps(
    person: WhatsAppPerson,
    message: WhatsAppSent,
    title: string,
  ): Promise<WhatsAppDelivery> {
    const button = message.buttons.find((b) => b.title === title);
    const row = message.rows.find((r) => r.title === title);
    if (!button && !row) throw new Error(`no button or row "${title}" on ${message.id}`);
    const interactive = button
      ? { type: "button_reply", button_reply: { id: button.id, title: button.title } }
      : {
          type: "list_reply",
          list_reply: { id: row?.id, title: row?.title, description: row?.description },
        };
    return this.#inbound(person, { type: "interactive", interactive }, { replyTo: message.id });
  }

  /** A person sends a file (kept in the media store, downloadable as the Cloud API serves media). */
  userSendsFile(
    person: WhatsAppPerson,
    file: { data: Buffer; mimeType: string; filename?: string; caption?: string },
  ): Promise<WhatsAppDelivery> {
    const id = this.#storeMedia(file.data, file.mimeType, file.filename);
    const kind = file.mimeType.startsWith("image/") ? "image" : "document";
    const media = {
      id,
      mime_type: file.mimeType,
      sha256: createHash("sha256").update(file.data).digest("base64"),
      ...(file.filename && kind === "document" ? { filename: file.filename } : {}),
      ...(file.caption ? { caption: file.caption } : {}),
    };
    return this.#inbound(person, { type: kind, [kind]: media }, {});
  }

  /**
   * The notification for a message, signed with the app secret (what Meta
   * would POST), without sending it: tests replay or forge with it.
   */
  notification(
    person: WhatsAppPerson,
    message: Record<string, unknown>,
    opts: { timestampSec?: number; id?: string } = {},
  ): { body: string; signature: string; messageId: string } {
    const messageId = opts.id ?? wamid();
    const timestamp = String(opts.timestampSec ?? Math.floor(Date.now() / 1000));
    const payload = {
      object: "whatsapp_business_account",
      entry: [
        {
          id: this.#options.businessAccountId ?? "102290129340398",
          changes: [
            {
              field: "messages",
              value: {
                messaging_product: "whatsapp",
                metadata: {
                  display_phone_number: this.#options.displayPhoneNumber ?? "15550783881",
                  phone_number_id: this.#options.phoneNumberId,
                },
                contacts: [{ profile: { name: person.name ?? person.waId }, wa_id: person.waId }],
                messages: [{ from: person.waId, id: messageId, timestamp, ...message }],
              },
            },
          ],
        },
      ],
    };
    const body = JSON.stringify(payload);
    return { body, signature: signWhatsAppBody(this.#options.appSecret, body), messageId };
  }

  /** POST a notification to the webhook as it is (no retries); for replays and forgeries. */
  async post(body: string, signature: string | undefined): Promise<DeliveryResponse> {
    const url = this.#requireWebhook();
    return postTo(
      url,
      body,
      {
        "content-type": "application/json",
        ...(signature ? { "x-hub-signature-256": signature } : {}),
      },
      30_000,
    );
  }

  /** Forget a person's last message time as if it were `hoursAgo` old (24 or more closes the window). */
  setLastInbound(waId: string, hoursAgo: number): void {
    this.#lastInbound.set(waId, Date.now() - hoursAgo * 3_600_000);
  }

  async #inbound(
    person: WhatsAppPerson,
    message: Record<string, unknown>,
    opts: { timestampSec?: number; replyTo?: string },
  ): Promise<WhatsAppDelivery> {
    const context = opts.replyTo
      ? { context: { from: this.#options.displayPhoneNumber ?? "15550783881", id: opts.replyTo } }
      : {};
    const n = this.notification(person, { ...message, ...context }, opts);
    const at = opts.timestampSec !== undefined ? opts.timestampSec * 1000 : Date.now();
    this.#lastInbound.set(person.waId, Math.max(this.#lastInbound.get(person.waId) ?? 0, at));
    this.#inboundIds.add(n.messageId);
    const first = await this.#deliver(n, 1);
    if (first.status !== 200) void this.#redeliver(n);
    return first;
  }

  async #deliver(
    n: { body: string; signature: string; messageId: string },
    attempt: number,
  ): Promise<WhatsAppDelivery> {
    const res = await this.post(n.body, n.signature);
    const delivery: WhatsAppDelivery = {
      messageId: n.messageId,
      attempt,
      status: res.status,
      body: res.body,
      notification: n.body,
      signature: n.signature,
      ...(res.error ? { error: res.error } : {}),
    };
    this.deliveries.push(delivery);
    this.#signal.notify();
    return delivery;
  }

  /** Meta retries a notification that got no 200, with growing gaps. */
  async #redeliver(n: { body: string; signature: string; messageId: string }): Promise<void> {
    const delays = this.#options.retryDelaysMs ?? [200, 1_000, 3_000];
    for (const [i, delay] of delays.entries()) {
      await new Promise((r) => setTimeout(r, delay));
      if (!this.#server) return;
      const d = await this.#deliver(n, i + 2).catch(() => undefined);
      if (d?.status === 200) return;
    }
  }

  #requireWebhook(): string {
    if (!this.#webhookUrl) throw new Error("no webhook: call verifyWebhook (or pass webhookUrl)");
    return this.#webhookUrl;
  }

  // ---------------------------------------------------------------- model

  /** The bot's messages to a person, oldest first. */
  messages(waId: string): WhatsAppSent[] {
    return this.sent.filter((m) => m.to === waId);
  }

  message(id: string): WhatsAppSent | undefined {
    return this.sent.find((m) => m.id === id);
  }

  /** An uploaded file's bytes (the bot's uploads and people's files). */
  media(id: string): { data: Buffer; mimeType: string; filename?: string } | undefined {
    return this.#media.get(id);
  }

  // ---------------------------------------------------------------- knobs

  /**
   * Media lookups (GET /<media-id>) name URLs under `base` instead of the
   * emulator (undefined: back to the emulator), as a compromised or
   * misconfigured answer could: the bot must not send its token there.
   */
  serveMediaFrom(base: string | undefined): void {
    this.#mediaBase = base;
  }

  /** The next `times` /messages calls of `kind` (text, interactive, template, read, or any) fail with `error`. */
  failNext(kind: string, error: GraphError, times = 1): void {
    this.#failures.push(kind, error, times);
  }

  /** The next `kind` send is throttled: 130429 (the number's throughput) or 131056 (pair rate). */
  forceRateLimit(kind: string, code: keyof typeof RATE_LIMITS = 130429, times = 1): void {
    this.failNext(kind, RATE_LIMITS[code], times);
  }

  waitFor<T>(predicate: () => T | undefined | null | false, opts?: WaitOptions): Promise<T> {
    return this.#signal.waitFor(predicate, opts);
  }

  // ---------------------------------------------------------------- Graph API routes

  async #route(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const url = new URL(req.url ?? "/", "http://emulator");
    const raw = await readRaw(req);
    const [version, object, edge, ...rest] = url.pathname.split("/").filter(Boolean);
    const method = req.method ?? "GET";
    const answer: Answer = (status, body, call = {}) => {
      this.calls.push({ method, path: url.pathname, status, body: call.body, ...call });
      this.#signal.notify();
      sendJson(res, status, body);
      return true;
    };
    const refuse: Refuse = (e, call = {}) =>
      answer(e.status, graphErrorBody(e), { errorCode: e.code, ...call });
    if (req.headers.authorization !== `Bearer ${this.#options.accessToken}`)
      return refuse(INVALID_TOKEN);
    if (method === "GET" && version === "media" && object && !edge)
      return this.#download(object, res);
    if (!version || !VERSION.test(version) || !object || rest.length)
      return refuse({ status: 400, code: 100, message: "Unknown path components" });
    if (method === "GET" && !edge) return this.#mediaInfo(object, answer, refuse);
    if (object !== this.#options.phoneNumberId)
      return refuse({
        status: 400,
        code: 100,
        message: `Unsupported post request. Object with ID '${object}' does not exist`,
      });
    if (method === "POST" && edge === "media") {
      const body = parseBody(raw, req.headers["content-type"]);
      const file = body.files.find((f) => f.field === "file");
      if (!file || body.fields.messaging_product !== "whatsapp")
        return refuse(invalidParameter("file and messaging_product=whatsapp are required"));
      const id = this.#storeMedia(file.data, body.fields.type || file.contentType, file.filename);
      return answer(200, { id }, { kind: "media" });
    }
    if (method === "POST" && edge === "messages") return this.#messages(raw, answer, refuse);
    return refuse({ status: 400, code: 100, message: "Unsupported request" });
  }

  #messages(raw: Buffer, answer: Answer, refuse: Refuse): Answered {
    let json: unknown;
    try {
      json = JSON.parse(raw.toString("utf8"));
    } catch {
      return refuse(invalidParameter("the body is not JSON"));
    }
    const receipt = ReadReceipt.safeParse(json);
    if (receipt.success) {
      const call = { kind: "read", body: json };
      const failure = this.#failures.take("read") ?? this.#failures.take("any");
      if (failure) return refuse(failure, call);
      if (!this.#inboundIds.has(receipt.data.message_id))
        return refuse(invalidParameter("unknown message_id"), call);
      this.receipts.push({
        messageId: receipt.data.message_id,
        typing: receipt.data.typing_indicator !== undefined,
        at: Date.now(),
      });
      return answer(200, { success: true }, call);
    }
    const parsed = SendMessage.safeParse(json);
    const kind = (json as { type?: unknown } | null)?.type;
    const call = { kind: typeof kind === "string" ? kind : "unknown", body: json };
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return refuse(invalidParameter(`${issue?.path.join(".")}: ${issue?.message}`), call);
    }
    const failure = this.#failures.take(call.kind) ?? this.#failures.take("any");
    if (failure) return refuse(failure, call);
    const m = parsed.data;
    const to = m.to.replace(/^\+/, "");
    if (m.type !== "template" && !this.#windowOpen(to)) return refuse(WINDOW_CLOSED, call);
    const duplicate = duplicateIds(m);
    if (duplicate) return refuse(invalidParameter(`duplicate button id ${duplicate}`), call);
    let template: { name: string; language: string; text: string } | undefined;
    if (m.type === "template") {
      template = this.#options.templates?.find(
        (t) => t.name === m.template.name && t.language === m.template.language.code,
      );
      if (!template)
        return refuse(
          {
            status: 404,
            code: 132001,
            message: "Template name does not exist in the translation",
            details: `template name (${m.template.name}) does not exist in ${m.template.language.code}`,
          },
          call,
        );
    }
    const id = wamid();
    this.sent.push(sentOf(id, to, m, template?.text));
    return answer(
      200,
      { messaging_product: "whatsapp", contacts: [{ input: m.to, wa_id: to }], messages: [{ id }] },
      call,
    );
  }

  #windowOpen(waId: string): boolean {
    const last = this.#lastInbound.get(waId);
    return last !== undefined && Date.now() - last < WINDOW_MS;
  }

  #storeMedia(data: Buffer, mimeType: string, filename?: string): string {
    const id = String(1e15 + Math.floor(Math.random() * 1e15));
    this.#media.set(id, { data, mimeType, ...(filename ? { filename } : {}) });
    return id;
  }

  #mediaInfo(id: string, answer: Answer, refuse: Refuse): Answered {
    const media = this.#media.get(id);
    if (!media)
      return refuse({ status: 400, code: 100, message: `Object with ID '${id}' does not exist` });
    return answer(
      200,
      {
        messaging_product: "whatsapp",
        url: `${this.#mediaBase ?? this.url}/media/${id}`,
        mime_type: media.mimeType,
        sha256: createHash("sha256").update(media.data).digest("hex"),
        file_size: media.data.length,
        id,
      },
      { kind: "media_info" },
    );
  }

  #download(id: string, res: ServerResponse): void {
    const media = this.#media.get(id);
    if (!media) {
      sendText(res, 404, "not found");
      return;
    }
    res.writeHead(200, { "content-type": media.mimeType, "content-length": media.data.length });
    res.end(media.data);
  }
}
