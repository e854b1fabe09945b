import { errorBody } from "@lobu/core";
import type { Context } from "hono";
import type { Logger } from "pino";
import type { AckPolicy } from "../../shared/ack.ts";
import { withinDeadline } from "../../shared/ack.ts";
import { type AdapterContext, REDELIVERY_MEMORY_MS } from "../../shared/adapter.ts";
import { handleOnce } from "../../shared/once.ts";
import type { PlatformRoutes } from "../../shared/routes.ts";
import { inboundOf, Notification, type WaInbound } from "./parse.ts";
import { checkSignatureHeader, verificationChallenge, verifyHubSignature } from "./verify.ts";

export const WEBHOOK_PATH = "/whatsapp/webhook";

/**
 * Meta delivers a webhook again, "with decreasing frequency", for up to
 * seven days while it gets no 200; it states no deadline. Storing is tried
 * twice before the delivery fails and Meta's redelivery takes over.
 */
export const WHATSAPP_WEBHOOK_ACK: AckPolicy = {
  transport: "WhatsApp webhook",
  redelivers: true,
  storeAttempts: 2,
};

/**
 * A message older than this is not taken: it is past the once-markers'
 * memory (a captured copy could not be told from a new message), and past
 * the 24-hour window in which it could be answered at all. A timestamp this
 * far in the future is refused as well.
 */
export const MAX_MESSAGE_AGE_MS = REDELIVERY_MEMORY_MS - 3_600_000;
const MAX_FUTURE_MS = 5 * 60_000;

export interface WebhookDeps {
  appSecret: string;
  verifyToken: string;
  phoneNumberId: string;
  ctx: Pick<AdapterContext, "once" | "audit">;
  log: Logger;
  /** Handle one message of a delivery (store it, or take a button's answer). */
  handle(item: WaInbound): Promise<void>;
  now?: () => number;
}

/**
 * GET /whatsapp/webhook answers Meta's verification handshake; POST takes
 * deliveries: the signature is checked on the headers, then over the raw
 * body (bounded by the platform limit) before anything is parsed, and every
 * message is handled once, however often it arrives.
 */
export function webhookReceiver(routes: PlatformRoutes, deps: WebhookDeps): void {
  const { log } = deps;
  routes.get(WEBHOOK_PATH, (c) => {
    const check = verificationChallenge(
      {
        mode: c.req.query("hub.mode"),
        token: c.req.query("hub.verify_token"),
        challenge: c.req.query("hub.challenge"),
      },
      deps.verifyToken,
    );
    if (!check.ok) {
      log.warn({ reason: check.reason }, "refused a WhatsApp webhook verification");
      return c.json(
        errorBody("forbidden", `WhatsApp webhook verification failed: ${check.reason}`),
        403,
      );
    }
    log.info("WhatsApp webhook verified");
    return c.text(check.challenge, 200);
  });

  routes.post(WEBHOOK_PATH, async (c) => {
    const header = c.req.header("x-hub-signature-256");
    const early = checkSignatureHeader(header);
    if (!early.ok) return unsigned(c, log, early.reason);
    const raw = new Uint8Array(await c.req.arrayBuffer()); // at most the platform body limit
    const check = verifyHubSignature(deps.appSecret, header, raw);
    if (!check.ok) return unsigned(c, log, check.reason);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(raw));
    } catch {
      return c.json(errorBody("malformed_json", "body is not JSON"), 400);
    }
    const notification = Notification.safeParse(json);
    if (!notification.success) {
      // Signed by Meta but not a WhatsApp notification: nothing to do, and a 4xx would only bring it back.
      log.warn("WhatsApp: a signed delivery that is not a WhatsApp notification; ignored");
      return c.body(null, 200);
    }
    try {
      await withinDeadline(WHATSAPP_WEBHOOK_ACK, log, async () => {
        for (const item of inboundOf(notification.data, deps.phoneNumberId, log))
          await handleItem(deps, item);
      });
    } catch (err) {
      // Meta redelivers on a non-200; each message's once-marker lets its redelivery through.
      log.error({ err }, "could not handle a WhatsApp delivery");
      return c.json(errorBody("internal", "could not handle the delivery"), 500);
    }
    return c.body(null, 200);
  });
}

async function handleItem(deps: WebhookDeps, item: WaInbound): Promise<void> {
  const { log, ctx } = deps;
  const ageMs = (deps.now ?? Date.now)() - Number(item.message.timestamp) * 1000;
  if (ageMs > MAX_MESSAGE_AGE_MS || ageMs < -MAX_FUTURE_MS) {
    ctx.audit("stale_refused", { kind: item.kind, ageSec: Math.round(ageMs / 1000) });
    log.warn(
      { ageSec: Math.round(ageMs / 1000) },
      "refused a WhatsApp message outside the accepted age (a replayed copy, or delivered after more than a day)",
    );
    return;
  }
  const marker = {
    key: `message:${deps.phoneNumberId}:${item.message.id}`,
    ttlMs: REDELIVERY_MEMORY_MS,
  };
  await handleOnce(
    { once: ctx.once, log, marker },
    () => deps.handle(item),
    () => {
      // Meta's redelivery and a captured copy look alike (the same signed bytes): neither is handled again.
      ctx.audit("replay_refused", { kind: item.kind });
      log.info(
        { kind: item.kind },
        "WhatsApp: a message already handled arrived again; acknowledged",
      );
    },
  );
}

function unsigned(c: Context, log: Logger, reason: string): Response {
  log.warn({ reason }, "refused a WhatsApp delivery that is not signed with WHATSAPP_APP_SECRET");
  return c.json(errorBody("bad_signature", `WhatsApp signature check failed: ${reason}`), 401);
}
