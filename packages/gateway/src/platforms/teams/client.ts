import { z } from "zod";
import { type RateLimit, rateLimitedCalls } from "../shared/pacing.ts";
import { CONNECTOR_SCOPE, serviceUrlAllowed, type TeamsSettings } from "./config.ts";

/**
 * The Bot Connector REST API (`/v3/conversations/...` under an activity's
 * serviceUrl), called with a token the bot gets from Entra ID (client
 * credentials, scope https://api.botframework.com/.default). A 429 becomes
 * RetryLater (shared pacing), with Teams' Retry-After.
 */

export class ConnectorError extends Error {
  readonly status: number;
  readonly retryAfterSec: number | undefined;

  constructor(status: number, message: string, retryAfterSec?: number) {
    super(message);
    this.name = "ConnectorError";
    this.status = status;
    this.retryAfterSec = retryAfterSec;
  }
}

export function rateLimitOf(err: unknown): RateLimit | undefined {
  if (!(err instanceof ConnectorError) || err.status !== 429) return undefined;
  return { retryAfterSec: err.retryAfterSec ?? 1, message: err.message };
}

export const teamsCall = rateLimitedCalls(rateLimitOf);

const TokenResponse = z.object({
  access_token: z.string().min(1),
  expires_in: z.coerce.number().int().positive(),
});
/** A token is renewed this long before it expires. */
const RENEW_EARLY_MS = 5 * 60_000;

/**
 * The bot's token for one API (the Connector by default; Microsoft Graph with
 * GRAPH_SCOPE), from the Entra token endpoint, renewed before it expires.
 */
export class ConnectorToken {
  readonly #settings: Pick<TeamsSettings, "appId" | "appPassword" | "tokenUrl">;
  readonly #scope: string;
  #token: { value: string; until: number } | undefined;
  #pending: Promise<string> | undefined;

  constructor(
    settings: Pick<TeamsSettings, "appId" | "appPassword" | "tokenUrl">,
    scope = CONNECTOR_SCOPE,
  ) {
    this.#settings = settings;
    this.#scope = scope;
  }

  async get(): Promise<string> {
    if (this.#token && Date.now() < this.#token.until) return this.#token.value;
    this.#pending ??= this.#fetch().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #fetch(): Promise<string> {
    const res = await fetch(this.#settings.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "client_credentials",
        client_id: this.#settings.appId,
        client_secret: this.#settings.appPassword,
        scope: this.#scope,
      }),
      redirect: "error",
      signal: AbortSignal.timeout(15_000),
    });
    if (!res.ok)
      throw new ConnectorError(
        res.status,
        `the token endpoint refused the bot's credentials (${res.status}): check TEAMS_APP_ID and TEAMS_APP_PASSWORD`,
      );
    const body = TokenResponse.parse(await res.json());
    this.#token = {
      value: body.access_token,
      until: Date.now() + Math.max(0, body.expires_in * 1000 - RENEW_EARLY_MS),
    };
    return body.access_token;
  }
}

const ResourceResponse = z.object({ id: z.string().max(512).default("") });

export interface ActivityOut {
  type: "message" | "typing";
  text?: string;
  textFormat?: "markdown" | "plain" | "xml";
  attachments?: { contentType: string; content?: unknown; contentUrl?: string; name?: string }[];
  replyToId?: string;
}

/** Calls to one service URL (where Teams said its conversations live). */
export class ConnectorClient {
  readonly #token: ConnectorToken;
  readonly #hosts: readonly string[];

  constructor(token: ConnectorToken, hosts: readonly string[]) {
    this.#token = token;
    this.#hosts = hosts;
  }

  /** POST an activity to a conversation, or as a reply to one of its activities; returns its id. */
  async send(serviceUrl: string, conversationId: string, activity: ActivityOut): Promise<string> {
    const path = `/v3/conversations/${encodeURIComponent(conversationId)}/activities${
      activity.replyToId ? `/${encodeURIComponent(activity.replyToId)}` : ""
    }`;
    const body = await this.#call(serviceUrl, "POST", path, activity);
    return ResourceResponse.parse(body ?? {}).id;
  }

  /** Replace an activity the bot sent (streaming, a card's outcome). */
  async update(
    serviceUrl: string,
    conversationId: string,
    activityId: string,
    activity: ActivityOut,
  ): Promise<void> {
    await this.#call(
      serviceUrl,
      "PUT",
      `/v3/conversations/${encodeURIComponent(conversationId)}/activities/${encodeURIComponent(activityId)}`,
      { ...activity, id: activityId },
    );
  }

  async remove(serviceUrl: string, conversationId: string, activityId: string): Promise<void> {
    await this.#call(
      serviceUrl,
      "DELETE",
      `/v3/conversations/${encodeURIComponent(conversationId)}/activities/${encodeURIComponent(activityId)}`,
    );
  }

  /** The 1:1 conversation of the bot with a person of a tenant (created, or the existing one). */
  async personalConversation(
    serviceUrl: string,
    botId: string,
    userId: string,
    tenantId: string | undefined,
  ): Promise<string> {
    const body = await this.#call(serviceUrl, "POST", "/v3/conversations", {
      bot: { id: botId },
      members: [{ id: userId }],
      isGroup: false,
      ...(tenantId ? { tenantId, channelData: { tenant: { id: tenantId } } } : {}),
    });
    const id = ResourceResponse.parse(body ?? {}).id;
    if (!id) throw new ConnectorError(502, "Teams created no conversation");
    return id;
  }

  /**
   * GET an attachment Teams serves behind the bot's token (an inline image's
   * `contentUrl`). Refused before anything is sent when its host is not a
   * service host: the token goes nowhere else, and never through a redirect.
   */
  async download(url: string, signal?: AbortSignal): Promise<Response> {
    if (!serviceUrlAllowed(url, this.#hosts))
      throw new ConnectorError(400, "the attachment's URL is not on a Teams service host");
    return fetch(url, {
      headers: { authorization: `Bearer ${await this.#token.get()}` },
      redirect: "error",
      ...(signal ? { signal } : {}),
    });
  }

  async #call(serviceUrl: string, method: string, path: string, body?: unknown): Promise<unknown> {
    // The service URL came in a verified token; the bot's token still goes to Teams' hosts only.
    if (!serviceUrlAllowed(serviceUrl, this.#hosts))
      throw new ConnectorError(
        400,
        `the service URL's host is not in [platforms.teams] service_hosts: ${new URL(serviceUrl).host}`,
      );
    const url = `${serviceUrl.replace(/\/+$/, "")}${path}`;
    const res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${await this.#token.get()}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      redirect: "error",
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (!res.ok) {
      const retry = Number(res.headers.get("retry-after"));
      throw new ConnectorError(
        res.status,
        `Teams ${method} ${path.split("/").slice(0, 3).join("/")}…: ${res.status} ${text.slice(0, 200)}`,
        Number.isFinite(retry) && retry > 0 ? Math.ceil(retry) : undefined,
      );
    }
    return text ? JSON.parse(text) : undefined;
  }
}
