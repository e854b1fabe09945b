import { errorBody } from "@lobu/core";
import type { Context } from "hono";
import type { Logger } from "pino";
import { type AckPolicy, withinDeadline } from "../../shared/ack.ts";
import type { AdapterContext } from "../../shared/adapter.ts";
import { handleOnce } from "../../shared/once.ts";
import type { PlatformRoutes } from "../../shared/routes.ts";
import {
  type BlockActionsPayload,
  type EventEnvelope,
  parseJson,
  parseSlackRequest,
  type SlackHandlers,
  type SlackRequest,
} from "./parse.ts";
import { checkSignatureHeaders, SIGNATURE_MEMORY_MS, verifySlackSignature } from "./verify.ts";

/**
 * Slack waits three seconds for the answer to an HTTP delivery, then sends
 * it again (up to three times, marked X-Slack-Retry-Num).
 */
export const SLACK_HTTP_ACK: AckPolicy = {
  transport: "Slack Events API",
  deadlineMs: 3_000,
  redelivers: true,
  storeAttempts: 1,
};

export interface HttpReceiverDeps {
  signingSecret: string;
  ctx: Pick<AdapterContext, "once" | "audit">;
  log: Logger;
  handlers: SlackHandlers;
}

/**
 * The Events API Request URL (POST /slack/events): events, interactions and
 * slash commands. A request is refused unless Slack signed it, and a signed
 * request is accepted once.
 */
export function httpReceiver(routes: PlatformRoutes, deps: HttpReceiverDeps): void {
  const { log } = deps;
  routes.post("/slack/events", async (c) => {
    const headers = {
      timestamp: c.req.header("x-slack-request-timestamp"),
      signature: c.req.header("x-slack-signature"),
    };
    // Refused on its headers alone (unsigned, stale) before a byte of the body is read.
    const early = checkSignatureHeaders(headers);
    if (!early.ok) return unsigned(c, log, early.reason);
    const raw = await c.req.text(); // at most the platform body limit
    const check = verifySlackSignature(deps.signingSecret, headers, raw);
    if (!check.ok) return unsigned(c, log, check.reason);
    const request = parseSlackRequest(c.req.header("content-type"), raw);
    const retry = c.req.header("x-slack-retry-num");
    // A signature is accepted once, on every gateway sharing the store: a captured copy does nothing.
    const marker = {
      key: `signature:${headers.timestamp}:${headers.signature}`,
      ttlMs: SIGNATURE_MEMORY_MS,
    };
    return handleOnce(
      { once: deps.ctx.once, log, marker },
      () => {
        if (retry)
          log.debug({ retry, reason: c.req.header("x-slack-retry-reason") }, "Slack redelivery");
        return withinDeadline(SLACK_HTTP_ACK, log, () => dispatch(c, request, deps.handlers));
      },
      () => replayed(c, deps, request.kind, retry),
    );
  });
}

function unsigned(c: Context, log: Logger, reason: string): Response {
  log.warn({ reason }, "refused a Slack request that is not signed with SLACK_SIGNING_SECRET");
  return c.json(errorBody("bad_signature", `Slack signature check failed: ${reason}`), 401);
}

function replayed(
  c: Context,
  deps: HttpReceiverDeps,
  kind: SlackRequest["kind"],
  retry: string | undefined,
): Response {
  deps.ctx.audit("replay_refused", { kind, ...(retry ? { retry } : {}) });
  // Slack's own redelivery of an event it already sent: acknowledge it, so Slack stops; it was handled.
  if (retry !== undefined && kind === "event") {
    deps.log.info({ retry }, "Slack redelivered an event already handled; acknowledged");
    return c.body(null, 200);
  }
  deps.log.warn({ kind }, "refused a copy of a Slack request that was already accepted");
  return c.json(
    errorBody(
      "replayed_request",
      "this signed Slack request was already accepted; a copy of it is refused",
      { hint: "Slack signs every request it sends anew. Send a freshly signed request." },
    ),
    409,
  );
}

async function dispatch(
  c: Context,
  request: SlackRequest,
  handlers: SlackHandlers,
): Promise<Response> {
  switch (request.kind) {
    case "interaction": {
      const payload = parseJson<BlockActionsPayload>(request.payload);
      if (payload === undefined)
        return c.json(errorBody("malformed_json", "payload is not JSON"), 400);
      await handlers.interaction(payload);
      return c.body(null, 200);
    }
    case "command": {
      const reply = await handlers.command(request.fields);
      return reply ? c.json(reply) : c.body(null, 200);
    }
    case "event": {
      const body = parseJson<EventEnvelope>(request.raw);
      if (body === undefined) return c.json(errorBody("malformed_json", "body is not JSON"), 400);
      if (body.type === "url_verification") return c.json({ challenge: body.challenge });
      if (body.type === "event_callback") await handlers.event(body);
      return c.body(null, 200);
    }
    case "unknown":
      return c.json(
        errorBody("bad_request", "expected an interaction payload or a slash command"),
        400,
      );
  }
}
