import { errorBody } from "@lobu/core";
import type { Context } from "hono";
import type { Logger } from "pino";
import { type AckPolicy, withinDeadline } from "../../shared/ack.ts";
import { type AdapterContext, REDELIVERY_MEMORY_MS } from "../../shared/adapter.ts";
import { handleOnce } from "../../shared/once.ts";
import type { PlatformRoutes } from "../../shared/routes.ts";
import type { InvokeResponse } from "../interactivity.ts";
import { Activity } from "./parse.ts";
import { type BotFrameworkKeys, bearerOf, checkActivity, verifyBotToken } from "./verify.ts";

export const MESSAGES_PATH = "/teams/messages";

/**
 * The Bot Framework waits 15 seconds for the answer to an activity (an
 * invoke's answer is what Teams shows); it states no redelivery Teams
 * relies on, so storing is tried three times within one delivery.
 */
export const TEAMS_ACK: AckPolicy = {
  transport: "Bot Framework",
  deadlineMs: 15_000,
  redelivers: false,
  storeAttempts: 3,
};

export interface ReceiverDeps {
  appId: string;
  keys: BotFrameworkKeys;
  ctx: Pick<AdapterContext, "once" | "audit">;
  log: Logger;
  /** Handle one verified activity, once; an invoke returns its answer. */
  handle(activity: Activity): Promise<InvokeResponse | undefined>;
}

/**
 * POST /teams/messages (the bot's messaging endpoint): refused (401) unless
 * its bearer token is the Bot Framework's for this app id; the token is
 * checked before the body is read, then against the activity (channel
 * endorsement, service URL). Each activity is handled once: a copy of it
 * (the connector's retry, or a replay within the token's hour) is
 * acknowledged and does nothing.
 */
export function messagesReceiver(routes: PlatformRoutes, deps: ReceiverDeps): void {
  const { log } = deps;
  routes.post(
    MESSAGES_PATH,
    async (c) => {
      const token = bearerOf(c.req.header("authorization"));
      if (!token) return unauthorized(c, log, "no bearer token");
      const verified = await verifyBotToken(token, deps).catch((err: unknown) => {
        log.error({ err }, "could not read the Bot Framework's signing keys");
        return undefined;
      });
      if (!verified)
        return c.json(
          errorBody("internal", "the Bot Framework's signing keys could not be read"),
          503,
        );
      if (!verified.ok) return unauthorized(c, log, verified.reason);
      let parsed: ReturnType<typeof Activity.safeParse>;
      try {
        parsed = Activity.safeParse(await c.req.json());
      } catch {
        return c.json(errorBody("malformed_json", "body is not JSON"), 400);
      }
      if (!parsed.success)
        return c.json(errorBody("bad_request", "not a Bot Framework activity"), 400);
      const activity = parsed.data;
      const check = checkActivity(verified, activity);
      if (!check.ok) return unauthorized(c, log, check.reason);
      const marker = {
        key: `activity:${activity.conversation.id}:${activity.id}`,
        ttlMs: REDELIVERY_MEMORY_MS,
      };
      try {
        return await handleOnce<Response>(
          { once: deps.ctx.once, log, marker },
          async () => {
            const answer = await withinDeadline(TEAMS_ACK, log, () => deps.handle(activity));
            return answer ? c.json(answer) : c.body(null, 200);
          },
          () => {
            deps.ctx.audit("replay_refused", { kind: activity.type });
            log.info(
              { kind: activity.type },
              "Teams: an activity already handled arrived again; acknowledged",
            );
            return activity.type === "invoke"
              ? c.json({
                  statusCode: 200,
                  type: "application/vnd.microsoft.activity.message",
                  value: "Already answered.",
                })
              : c.body(null, 200);
          },
        );
      } catch (err) {
        log.error({ err }, "could not handle a Teams activity");
        return c.json(errorBody("internal", "could not handle the activity"), 500);
      }
    },
    { maxBodyBytes: 262_144 },
  );
}

function unauthorized(c: Context, log: Logger, reason: string): Response {
  log.warn({ reason }, "refused a Teams activity not signed by the Bot Framework for this bot");
  return c.json(errorBody("bad_signature", `Bot Framework token check failed: ${reason}`), 401);
}
