import type net from "node:net";
import type { ResolvedAddress } from "./addresses.ts";
import type { Refusal } from "./explain.ts";

/**
 * Bookkeeping of an egress endpoint's long-lived connections: the tunnel slots
 * each sandbox may hold, the sockets to cut on shutdown, and what an intercepted
 * TLS tunnel was opened to.
 */

/** An intercepted CONNECT tunnel: every request inside it is checked against this. */
export interface TunnelContext {
  sandboxId: string;
  /** Canonical host the CONNECT named. */
  host: string;
  port: number;
  /** Addresses vetted when the tunnel was opened; requests inside it go only there. */
  addresses: ResolvedAddress[];
}

/** Open CONNECT tunnels and upgraded connections per sandbox, up to a limit. */
export class TunnelSlots {
  readonly #open = new Map<string, number>();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /**
   * Count a long-lived connection (CONNECT tunnel, upgraded stream) against the
   * sandbox's limit until `socket` closes. Returns its release (idempotent), or
   * null when the sandbox is over the limit.
   */
  hold(sandboxId: string, socket: net.Socket): (() => void) | null {
    const open = this.#open.get(sandboxId) ?? 0;
    if (open >= this.#limit) return null;
    this.#open.set(sandboxId, open + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = (this.#open.get(sandboxId) ?? 1) - 1;
      if (n <= 0) this.#open.delete(sandboxId);
      else this.#open.set(sandboxId, n);
    };
    // The client may have gone while its policy was looked up: no close event will come.
    if (socket.destroyed) release();
    else socket.once("close", release);
    return release;
  }

  /** The 429 for a sandbox that holds every slot. */
  limitRefusal(sandboxId: string, host: string, agentId: string): Refusal {
    return {
      status: 429,
      kind: "limit",
      host,
      reason: `this sandbox already has ${this.#open.get(sandboxId) ?? 0} open tunnels and upgraded connections (limit ${this.#limit})`,
      agentId,
    };
  }
}

/** Every socket the endpoint opened or accepted, so shutdown can cut them all. */
export class OpenSockets {
  readonly #sockets = new Set<net.Socket>();

  track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  destroyAll(): void {
    for (const s of this.#sockets) s.destroy();
  }
}

/**
 * Until a tunnel or upgrade is spliced, a client that hangs up is gone: the
 * HTTP server keeps its sockets half-open, so without this a departed client
 * would hold its tunnel slot until the idle timeout. Returns the undo.
 */
export function closeOnHangUp(socket: net.Socket): () => void {
  const hangUp = () => socket.destroy();
  socket.on("error", hangUp);
  socket.once("end", hangUp);
  return () => socket.off("end", hangUp);
}
