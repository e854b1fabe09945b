import { errorBody } from "@lobu/core";
import type { Context } from "hono";
import type { Logger } from "pino";
import { type AckPolicy, withinDeadline } from "../../shared/ack.ts";
import type { AdapterContext } from "../../shared/adapter.ts";
import { handleOnce } from "../../shared/once.ts";
import type { PlatformRoutes } from "../../shared/routes.ts";
import type { InteractionResponse } from "../interactivity.ts";
import { Interaction, InteractionType } from "./parse.ts";
import {
  checkSignatureHeaders,
  publicKeyOf,
  SIGNATURE_MEMORY_MS,
  verifyInteraction,
} from "./verify.ts";

export const INTERACTIONS_PATH = "/discord/interactions";

/** Discord waits three seconds for an interaction's answer and does not send it again. */
export const DISCORD_INTERACTIONS_ACK: AckPolicy = {
  transport: "Discord interactions",
  deadlineMs: 3_000,
  redelivers: false,
  storeAttempts: 1,
};

export interface InteractionsDeps {
  /** /discord/interactions, or /discord/<id>/interactions for a named bot. */
  path: string;
  /** The bot's application key: an interaction another application signed is refused here. */
  publicKey: string;
  ctx: Pick<AdapterContext, "once" | "audit">;
  log: Logger;
  component(i: Interaction): Promise<InteractionResponse>;
  command(i: Interaction): Promise<InteractionResponse>;
}

/**
 * POST /discord/interactions (the Interactions Endpoint URL): refused
 * unless signed with the application's key (headers first, then Ed25519
 * over timestamp + raw body), each signed request accepted once; PING gets
 * PONG, commands and clicks their answer in the HTTP response (never a
 * settings link: `/lobu` defers, and its link follows through the
 * interaction's webhook).
 */
export function interactionsReceiver(routes: PlatformRoutes, deps: InteractionsDeps): void {
  const { log } = deps;
  const key = publicKeyOf(deps.publicKey);
  routes.post(
    deps.path,
    async (c) => {
      const headers = {
        signature: c.req.header("x-signature-ed25519"),
        timestamp: c.req.header("x-signature-timestamp"),
      };
      const early = checkSignatureHeaders(headers);
      if (!early.ok) return unsigned(c, log, early.reason);
      const raw = new Uint8Array(await c.req.arrayBuffer());
      const check = verifyInteraction(key, headers, raw);
      if (!check.ok) return unsigned(c, log, check.reason);
      let parsed: ReturnType<typeof Interaction.safeParse>;
      try {
        parsed = Interaction.safeParse(JSON.parse(new TextDecoder().decode(raw)));
      } catch {
        return c.json(errorBody("malformed_json", "body is not JSON"), 400);
      }
      if (!parsed.success) return c.json(errorBody("bad_request", "not an interaction"), 400);
      const interaction = parsed.data;
      // Discord's endpoint check sends PINGs again and again: they change nothing, so no marker.
      if (interaction.type === InteractionType.Ping) return c.json({ type: 1 });
      const marker = {
        key: `signature:${headers.signature?.toLowerCase()}`,
        ttlMs: SIGNATURE_MEMORY_MS,
      };
      return handleOnce<Response>(
        { once: deps.ctx.once, log, marker },
        async () =>
          c.json(
            await withinDeadline(DISCORD_INTERACTIONS_ACK, log, () => dispatch(deps, interaction)),
          ),
        () => {
          deps.ctx.audit("replay_refused", { kind: `interaction:${interaction.type}` });
          log.warn("refused a copy of a Discord interaction that was already accepted");
          return c.json(
            errorBody(
              "replayed_request",
              "this signed Discord interaction was already accepted; a copy of it is refused",
            ),
            409,
          );
        },
      );
    },
    { maxBodyBytes: 262_144 },
  );
}

function dispatch(deps: InteractionsDeps, interaction: Interaction): Promise<InteractionResponse> {
  if (interaction.type === InteractionType.Component) return deps.component(interaction);
  if (interaction.type === InteractionType.Command) return deps.command(interaction);
  return Promise.resolve({ type: 4, data: { content: "⚠️ Not supported.", flags: 64 } });
}

function unsigned(c: Context, log: Logger, reason: string): Response {
  log.warn({ reason }, "refused a Discord interaction not signed with the application's key");
  return c.json(errorBody("bad_signature", `Discord signature check failed: ${reason}`), 401);
}
