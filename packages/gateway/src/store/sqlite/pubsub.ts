import { EventEmitter } from "node:events";
import type { PubSub } from "../port.ts";
import { safeCall } from "../shared.ts";

/**
 * In-process pub/sub: one process owns the SQLite file, so every subscriber
 * lives here. Delivery is asynchronous (like Redis) and in publish order.
 */
export class SqlitePubSub implements PubSub {
  #emitter = new EventEmitter();
  #assertOpen: () => void;

  constructor(assertOpen: () => void) {
    this.#assertOpen = assertOpen;
    this.#emitter.setMaxListeners(0);
  }

  async publish(channel: string, message: string): Promise<void> {
    this.#assertOpen();
    queueMicrotask(() => this.#emitter.emit(channel, message));
  }

  async subscribe(
    channel: string,
    listener: (message: string) => void,
  ): Promise<() => Promise<void>> {
    this.#assertOpen();
    const entry = (message: string) => safeCall(listener, message);
    this.#emitter.on(channel, entry);
    return async () => {
      this.#emitter.off(channel, entry);
    };
  }

  close(): void {
    this.#emitter.removeAllListeners();
  }
}
