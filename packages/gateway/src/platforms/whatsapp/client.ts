import { z } from "zod";
import { type RateLimit, rateLimitedCalls } from "../shared/pacing.ts";
import type { WhatsAppSettings } from "./config.ts";
import type { OutboundMessage } from "./payloads.ts";

/**
 * The WhatsApp Cloud API over plain fetch. Meta publishes no maintained Node
 * SDK for it (its old `whatsapp` npm package is archived), and the adapter
 * needs two routes: POST /<version>/<phone-number-id>/messages (messages,
 * read receipts, the typing indicator) and the media routes. Every answer is
 * validated with zod; errors keep Graph's code, never the token.
 */

const REQUEST_TIMEOUT_MS = 30_000;

const UploadResult = z.object({ id: z.string().min(1) });

const MediaInfo = z.object({
  url: z.string().min(1),
  mime_type: z.string().optional(),
  file_size: z.coerce.number().int().nonnegative().optional(),
});
export type MediaInfo = z.infer<typeof MediaInfo>;

const SendResult = z.object({
  messages: z.array(z.object({ id: z.string().min(1) })).min(1),
});

const GraphErrorBody = z.object({
  error: z.object({
    message: z.string().default(""),
    code: z.number().int(),
    error_subcode: z.number().int().optional(),
    error_data: z.object({ details: z.string().optional() }).optional(),
  }),
});

/** A refusal from the Graph API, with its error code (docs: "Cloud API error codes"). */
export class GraphApiError extends Error {
  readonly status: number;
  readonly code: number;
  /** Seconds from a Retry-After header, when Graph sent one. */
  readonly retryAfterSec: number | undefined;

  constructor(status: number, code: number, message: string, retryAfterSec?: number) {
    super(`WhatsApp Cloud API refused the call (${status}, code ${code}): ${message}`);
    this.name = "GraphApiError";
    this.status = status;
    this.code = code;
    this.retryAfterSec = retryAfterSec;
  }
}

/** Re-engagement message: more than 24 hours passed since the person's last message. */
export const WINDOW_CLOSED_CODE = 131047;

/**
 * Graph's "slow down" codes: 130429 (the number's throughput), 131056 (too
 * many messages to one person), 80007 (the business account's limit), and
 * the Graph-wide throttles 4, 17, 32, 613. How long to wait when Graph sends
 * no Retry-After: WhatsApp allows about one message every six seconds to
 * one person; the others clear within a second or so.
 */
const RATE_LIMIT_WAIT_SEC: Record<number, number> = {
  130429: 1,
  131056: 6,
  80007: 2,
  4: 2,
  17: 2,
  32: 2,
  613: 2,
};

export function rateLimitOf(err: unknown): RateLimit | undefined {
  if (!(err instanceof GraphApiError)) return undefined;
  const wait = RATE_LIMIT_WAIT_SEC[err.code] ?? (err.status === 429 ? 1 : undefined);
  if (wait === undefined) return undefined;
  return { retryAfterSec: err.retryAfterSec ?? wait, message: err.message };
}

/** A Graph call with WhatsApp's rate limits turned into RetryLater (shared pacing). */
export const waCall = rateLimitedCalls(rateLimitOf);

export class GraphClient {
  readonly #messagesUrl: string;
  readonly #mediaUrl: string;
  readonly #token: string;
  readonly #apiRoot: string;
  readonly #version: string;

  constructor(
    settings: Pick<WhatsAppSettings, "apiRoot" | "graphVersion" | "phoneNumberId" | "accessToken">,
  ) {
    const base = `${settings.apiRoot}/${settings.graphVersion}/${settings.phoneNumberId}`;
    this.#messagesUrl = `${base}/messages`;
    this.#mediaUrl = `${base}/media`;
    this.#token = settings.accessToken;
    this.#apiRoot = settings.apiRoot;
    this.#version = settings.graphVersion;
  }

  /** Where a person's media can be downloaded (GET /<media-id>; the URL lives 5 minutes). */
  async mediaInfo(mediaId: string): Promise<MediaInfo> {
    const url = `${this.#apiRoot}/${this.#version}/${encodeURIComponent(mediaId)}`;
    const parsed = MediaInfo.safeParse(await this.#request(url, undefined));
    if (!parsed.success)
      throw new Error("WhatsApp Cloud API answered a media lookup without a URL");
    return parsed.data;
  }

  /**
   * GET a media URL with the access token. The caller checks the host first:
   * the token goes only to Graph's own hosts, and never through a redirect.
   */
  downloadMedia(url: URL, signal?: AbortSignal): Promise<Response> {
    return fetch(url, {
      headers: { authorization: `Bearer ${this.#token}` },
      redirect: "error",
      ...(signal ? { signal } : {}),
    });
  }

  /** Send a message; resolves with its id (wamid). */
  async send(message: OutboundMessage): Promise<string> {
    const body = await this.#post({
      messaging_product: "whatsapp",
      recipient_type: "individual",
      ...message,
    });
    const parsed = SendResult.safeParse(body);
    if (!parsed.success) throw new Error("WhatsApp Cloud API answered a send without a message id");
    return (parsed.data.messages[0] as { id: string }).id;
  }

  /** Mark the person's message read; with `typing`, show "typing…" (until a reply, at most 25 s). */
  async markRead(messageId: string, typing: boolean): Promise<void> {
    await this.#post({
      messaging_product: "whatsapp",
      status: "read",
      message_id: messageId,
      ...(typing ? { typing_indicator: { type: "text" } } : {}),
    });
  }

  /** Upload a file (POST /<phone-number-id>/media); resolves with its media id, for a document message. */
  async uploadMedia(file: {
    data: Uint8Array;
    filename: string;
    mimeType: string;
  }): Promise<string> {
    const form = new FormData();
    form.set("messaging_product", "whatsapp");
    form.set("type", file.mimeType);
    form.set("file", new Blob([file.data], { type: file.mimeType }), file.filename);
    const parsed = UploadResult.safeParse(await this.#request(this.#mediaUrl, form));
    if (!parsed.success)
      throw new Error("WhatsApp Cloud API answered an upload without a media id");
    return parsed.data.id;
  }

  #post(payload: unknown): Promise<unknown> {
    return this.#request(this.#messagesUrl, JSON.stringify(payload));
  }

  async #request(url: string, body: string | FormData | undefined): Promise<unknown> {
    const res = await fetch(url, {
      method: body === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${this.#token}`,
        ...(typeof body === "string" ? { "content-type": "application/json" } : {}),
      },
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = undefined;
    }
    if (res.ok && json !== undefined) return json;
    const error = GraphErrorBody.safeParse(json);
    const retryAfter = Number(res.headers.get("retry-after"));
    throw new GraphApiError(
      res.status,
      error.success ? error.data.error.code : 0,
      error.success
        ? [error.data.error.message, error.data.error.error_data?.details]
            .filter(Boolean)
            .join(": ")
        : `an answer that is not a Graph error (${text.slice(0, 200)})`,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
    );
  }
}
