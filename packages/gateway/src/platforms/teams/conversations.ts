import type { Logger } from "pino";
import { z } from "zod";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";

/**
 * Where a Teams conversation is reached: the service URL from the (verified)
 * activity, the tenant and the bot's id in it. Kept in the adapter's state,
 * so any gateway sharing the store can reply.
 */
export const ConversationRef = z.object({
  serviceUrl: z.string().min(1).max(2048),
  tenantId: z.string().max(64).optional(),
  botId: z.string().min(1).max(512),
  /** A channel's team (group id) and channel id, where its files live in Graph. */
  graphChannel: z.object({ team: z.string().max(64), channel: z.string().max(512) }).optional(),
});
export type ConversationRef = z.infer<typeof ConversationRef>;

/** As long as a conversation's turns can run (and then some). */
const REF_TTL_MS = 30 * 86_400_000;
const keyOf = (conversationId: string) => `conv:${conversationId}`;

export class Conversations {
  readonly #state: AdapterContext["state"];
  readonly #log: Logger;

  constructor(state: AdapterContext["state"], log: Logger) {
    this.#state = state;
    this.#log = log;
  }

  async remember(conversationId: string, ref: ConversationRef): Promise<void> {
    await this.#state.set(keyOf(conversationId), JSON.stringify(ref), REF_TTL_MS);
  }

  async get(conversationId: string): Promise<ConversationRef> {
    const key = keyOf(conversationId);
    const raw = await this.#state.get(key);
    const ref =
      raw === null
        ? undefined
        : readRecord(
            ConversationRef,
            raw,
            { record: "Teams conversation", key },
            this.#log,
            "no reply is possible",
          );
    if (!ref) throw new Error("this Teams conversation is not known here: no message came from it");
    return ref;
  }
}
