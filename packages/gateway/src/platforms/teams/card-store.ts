import type { Logger } from "pino";
import { z } from "zod";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";

const ShownCard = z.object({
  activityId: z.string().min(1).max(512),
  body: z.array(z.unknown()).max(100),
});
export type ShownCard = z.infer<typeof ShownCard>;

/** As long as a request can wait for its answer. */
const CARD_TTL_MS = 2 * 86_400_000;
const keyOf = (requestId: string) => `card:${requestId}`;

/**
 * The request cards the bot sent, by request id: an Action.Execute click
 * (on any gateway) answers with the card refreshed (its text and the
 * outcome), and a Submit click closes it, without the turn's live view.
 */
export class CardStore {
  readonly #state: AdapterContext["state"];
  readonly #log: Logger;

  constructor(state: AdapterContext["state"], log: Logger) {
    this.#state = state;
    this.#log = log;
  }

  async remember(requestId: string, card: ShownCard): Promise<void> {
    await this.#state.set(keyOf(requestId), JSON.stringify(card), CARD_TTL_MS);
  }

  async get(requestId: string): Promise<ShownCard | undefined> {
    const key = keyOf(requestId);
    const raw = await this.#state.get(key);
    if (raw === null) return undefined;
    return readRecord(
      ShownCard,
      raw,
      { record: "Teams card", key },
      this.#log,
      "the card is not refreshed",
    );
  }
}
