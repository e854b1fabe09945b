import type { Redis } from "ioredis";
import type { PubSub } from "../port.ts";
import { safeCall } from "../shared.ts";

/**
 * Pub/sub across gateways. Publishing goes over the shared connection;
 * subscriptions share one dedicated subscriber connection (ioredis
 * re-subscribes after a reconnect). Channels are `P c:<channel>`.
 */
export class RedisPubSub implements PubSub {
  #pub: Redis;
  #sub: Redis;
  #prefix: string;
  #listeners = new Map<string, Set<(message: string) => void>>();

  constructor(pub: Redis, sub: Redis, prefix: string) {
    this.#pub = pub;
    this.#sub = sub;
    this.#prefix = prefix;
    sub.on("message", (channel: string, message: string) => {
      const set = this.#listeners.get(channel);
      if (set) for (const listener of [...set]) safeCall(listener, message);
    });
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#pub.publish(this.#channel(channel), message);
  }

  subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>> {
    return this.subscribeRaw(this.#channel(channel), listener);
  }

  /** Subscribe to a full (already prefixed) channel name; used by the queue. */
  async subscribeRaw(
    channel: string,
    listener: (message: string) => void,
  ): Promise<() => Promise<void>> {
    const entry = (message: string) => listener(message);
    let set = this.#listeners.get(channel);
    if (!set) {
      set = new Set();
      this.#listeners.set(channel, set);
    }
    set.add(entry);
    try {
      // Always sent: its reply is what proves later publishes will reach us.
      await this.#sub.subscribe(channel);
    } catch (err) {
      await this.#drop(channel, entry);
      throw err;
    }
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      await this.#drop(channel, entry);
    };
  }

  async #drop(channel: string, entry: (message: string) => void): Promise<void> {
    const set = this.#listeners.get(channel);
    if (!set?.delete(entry) || set.size > 0) return;
    this.#listeners.delete(channel);
    // Commands on one connection run in order, so a later SUBSCRIBE still wins.
    // A failed UNSUBSCRIBE only means unheard messages get dropped on arrival.
    if (this.#sub.status !== "end") await this.#sub.unsubscribe(channel).catch(() => undefined);
  }

  #channel(channel: string): string {
    return `${this.#prefix}c:${channel}`;
  }

  close(): void {
    this.#listeners.clear();
  }
}
