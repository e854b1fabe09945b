import { isLobuError, type LobuError } from "@lobu/core";
import type { Logger } from "pino";
import type { InboundFile, InboundMessage } from "../../domain/messages.ts";
import type { Origin } from "../../domain/origin.ts";
import type { PlatformFacts } from "../../domain/platform-facts.ts";
import type { AckPolicy } from "./ack.ts";
import type { AdapterContext } from "./adapter.ts";
import type { Background } from "./background.ts";
import { stopCommand, stopFromChat } from "./stop.ts";

/** What to tell a person whose message the gateway refused for good (too long, unknown agent). */
export function refusalText(err: LobuError): string {
  return `⚠️ ${err.message}${err.hint ? `. ${err.hint}` : ""}`;
}

/**
 * A chat message for the gateway, or undefined when it carries nothing (no
 * text, no files). `eventId` names the message itself, so that every way the
 * platform delivers it again is the same message to Inbound.
 */
export function inboundMessage(fields: {
  origin: Origin;
  text: string;
  files: InboundFile[];
  eventId: string;
  agentId: string | undefined;
  /** What the platform can tell the access check about the sender and channel. */
  facts?: PlatformFacts;
  /** A channel message that does not address the agent (ambient mode decides). */
  ambient?: boolean;
}): InboundMessage | undefined {
  const { origin, text, files, eventId, agentId, facts, ambient } = fields;
  if (!text && files.length === 0) return undefined;
  return {
    origin,
    text,
    ...(files.length ? { files } : {}),
    eventId,
    ...(agentId ? { agentId } : {}),
    ...(facts ? { facts } : {}),
    ...(ambient ? { ambient } : {}),
  };
}

export interface SubmitInboundDeps {
  ctx: Pick<AdapterContext, "submit" | "stop">;
  policy: AckPolicy;
  log: Logger;
  background: Background;
  /** Tell the person something in the conversation the message came from. */
  notify(origin: Origin, text: string): Promise<void>;
  /** Aborted when the adapter stops: no more attempts at storing. */
  stopped?: AbortSignal;
}

const STORE_BACKOFF_MS = 500;

/**
 * Hand a message to the gateway; resolves once it is stored, so the platform
 * may be answered. A message the gateway refuses for good (4xx: too long, an
 * unknown agent) is explained to the person instead, and the delivery counts
 * as handled (a redelivery would be refused the same way). A `stop` (stop.ts)
 * stops the running turn instead of being queued. Storing that fails
 * is tried again per the transport's ack policy, then thrown: the delivery
 * fails, and the platform delivers it again where it does.
 */
export async function submitInbound(
  deps: SubmitInboundDeps,
  message: InboundMessage,
): Promise<void> {
  // `stop` is not a message for the agent: it must not wait behind the turn it stops.
  const stop = message.files?.length ? undefined : stopCommand(message.text);
  if (stop) {
    const { origin } = message;
    await stopFromChat(
      deps.ctx,
      {
        who: origin,
        target: { origin, ...(message.agentId ? { agentId: message.agentId } : {}) },
        clearQueue: stop.clearQueue,
      },
      async (text) =>
        deps.background.run(() => deps.notify(origin, text), "could not answer a stop"),
    );
    return;
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await deps.ctx.submit(message);
      return;
    } catch (err) {
      if (isLobuError(err) && err.status < 500) {
        const text = refusalText(err);
        deps.background.run(
          () => deps.notify(message.origin, text),
          "could not report a refused message",
        );
        return;
      }
      if (attempt >= deps.policy.storeAttempts || deps.stopped?.aborted) throw err;
      deps.log.warn(
        { err, attempt, platform: message.origin.platform },
        "could not store a message; trying again",
      );
      await new Promise((r) => setTimeout(r, STORE_BACKOFF_MS * 2 ** attempt));
    }
  }
}
