import { errorBody } from "@lobu/core";
import type { Context } from "hono";
import type { Logger } from "pino";
import { type AckPolicy, withinDeadline } from "../../shared/ack.ts";
import type { AdapterContext } from "../../shared/adapter.ts";
import { handleOnce } from "../../shared/once.ts";
import type { PlatformRoutes } from "../../shared/routes.ts";
import type { ChatResponse } from "../interactivity.ts";
import { ChatEvent } from "./parse.ts";
import { bearerOf, type ChatTokenVerifier, requestDigest } from "./verify.ts";

export const EVENTS_PATH = "/googlechat/events";

/**
 * Google Chat waits 30 seconds for the answer to an event and does not send
 * a failed one again, so storing is tried a few times within the delivery.
 */
export const GOOGLE_CHAT_ACK: AckPolicy = {
  transport: "Google Chat HTTP endpoint",
  deadlineMs: 30_000,
  redelivers: false,
  storeAttempts: 3,
};

/** Chat's events are small (a message is at most 32 KB of text); more is refused while it is read. */
const MAX_EVENT_BYTES = 262_144;
/** A request marker outlives the token it was sent with by this much (clock skew). */
const MARKER_SLACK_MS = 60_000;

export interface EventsDeps {
  verify: ChatTokenVerifier;
  ctx: Pick<AdapterContext, "once" | "audit">;
  log: Logger;
  /** Handle one verified event; the result is the HTTP answer Chat shows (`{}` for none). */
  handle(event: ChatEvent): Promise<ChatResponse>;
}

/**
 * POST /googlechat/events (the app's HTTP endpoint URL): refused unless it
 * carries a bearer token Google signed for this app (checked before the body
 * is read), each signed request accepted once; the event's answer is the
 * HTTP response.
 */
export function eventsReceiver(routes: PlatformRoutes, deps: EventsDeps): void {
  const { log } = deps;
  routes.post(
    EVENTS_PATH,
    async (c) => {
      const bearer = bearerOf(c.req.header("authorization"));
      if (!bearer.ok) return unsigned(c, log, bearer.reason);
      const check = await deps.verify(bearer.token);
      if (!check.ok) return unsigned(c, log, check.reason);
      const raw = new Uint8Array(await c.req.arrayBuffer()); // bounded while read
      let parsed: ReturnType<typeof ChatEvent.safeParse>;
      try {
        parsed = ChatEvent.safeParse(JSON.parse(new TextDecoder().decode(raw)));
      } catch {
        return c.json(errorBody("malformed_json", "body is not JSON"), 400);
      }
      if (!parsed.success) return c.json(errorBody("bad_request", "not a Google Chat event"), 400);
      const event = parsed.data;
      const marker = {
        key: `request:${requestDigest(bearer.token, raw)}`,
        ttlMs: Math.max(check.expiresAtMs - Date.now(), 0) + MARKER_SLACK_MS,
      };
      return handleOnce<Response>(
        { once: deps.ctx.once, log, marker },
        async () => {
          try {
            return c.json(await withinDeadline(GOOGLE_CHAT_ACK, log, () => deps.handle(event)));
          } catch (err) {
            log.error({ err, type: event.type }, "could not handle a Google Chat event");
            throw err;
          }
        },
        () => {
          deps.ctx.audit("replay_refused", { kind: event.type });
          log.warn("refused a copy of a Google Chat request that was already accepted");
          return c.json(
            errorBody(
              "replayed_request",
              "this signed Google Chat request was already accepted; a copy of it is refused",
            ),
            409,
          );
        },
      ).catch(() => c.json(errorBody("internal", "could not handle the event"), 500));
    },
    { maxBodyBytes: MAX_EVENT_BYTES },
  );
}

function unsigned(c: Context, log: Logger, reason: string): Response {
  log.warn({ reason }, "refused a Google Chat request without a valid Google-signed token");
  return c.json(errorBody("bad_signature", `Google Chat token check failed: ${reason}`), 401);
}
