import type { Logger } from "pino";
import { z } from "zod";
import { readRecord } from "../../util/stored-record.ts";
import type { AdapterContext } from "../shared/adapter.ts";

/**
 * WhatsApp's customer-service window: a business may send a person free-form
 * messages (text, buttons, lists) for 24 hours after the person's last
 * message; after that only approved templates. The adapter remembers each
 * person's last message time in its state (a key that expires when the
 * window closes), so it knows before it sends; the Cloud API's own refusal
 * (131047) is the final word.
 */
export const SERVICE_WINDOW_MS = 24 * 3_600_000;

const LastInbound = z.object({ at: z.number().int().nonnegative() });
const key = (userId: string) => `window:${userId}`;

export class ServiceWindow {
  readonly #state: AdapterContext["state"];
  readonly #log: Logger;
  readonly #now: () => number;

  constructor(state: AdapterContext["state"], log: Logger, now: () => number = Date.now) {
    this.#state = state;
    this.#log = log;
    this.#now = now;
  }

  /** The person wrote at `atMs` (their message's timestamp): the window runs 24 hours from then. */
  async opened(userId: string, atMs: number): Promise<void> {
    const last = await this.lastInbound(userId);
    if (last !== undefined && last >= atMs) return;
    const ttlMs = atMs + SERVICE_WINDOW_MS - this.#now();
    if (ttlMs <= 0) return;
    await this.#state.set(key(userId), JSON.stringify({ at: atMs }), ttlMs);
  }

  /** Whether free-form messages may be sent to the person now. */
  async isOpen(userId: string): Promise<boolean> {
    const last = await this.lastInbound(userId);
    return last !== undefined && this.#now() - last < SERVICE_WINDOW_MS;
  }

  async lastInbound(userId: string): Promise<number | undefined> {
    const raw = await this.#state.get(key(userId));
    if (raw === null) return undefined;
    const source = { record: "WhatsApp service window", key: key(userId) };
    // Unreadable reads as closed: the adapter then sends the template, never a refused message.
    return readRecord(LastInbound, raw, source, this.#log, "the window reads as closed")?.at;
  }
}
