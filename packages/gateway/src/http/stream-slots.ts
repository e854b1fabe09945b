import { LobuError } from "@lobu/core";
import ipaddr from "ipaddr.js";

/** How long a refused client should wait before trying again (streams end with their turn). */
export const STREAM_RETRY_AFTER_SEC = 5;

export interface StreamLimits {
  perToken: number;
  perAddress: number;
}

/** Who holds a stream: the API token and the client's network address. */
export interface StreamHolder {
  tokenId: string;
  address: string;
}

/**
 * Counts the event streams (SSE) open on this gateway, per API token and per
 * client address, and refuses one more beyond either cap. An open stream costs
 * a store reader (a Redis connection on Redis) for as long as the client stays,
 * so without a cap one client could open hundreds on one message.
 *
 * Counts are per gateway process (several gateways behind a load balancer each
 * apply the caps to the streams they serve).
 */
export class StreamSlots {
  private readonly limits: StreamLimits;
  private readonly byToken = new Map<string, number>();
  private readonly byAddress = new Map<string, number>();

  constructor(limits: StreamLimits) {
    this.limits = limits;
  }

  /**
   * Take a slot for `holder`, or throw a 429 `too_many_streams`. The returned
   * function gives it back; calling it more than once is harmless.
   */
  acquire(holder: StreamHolder): () => void {
    const tokenCount = this.byToken.get(holder.tokenId) ?? 0;
    const addressCount = this.byAddress.get(holder.address) ?? 0;
    if (tokenCount >= this.limits.perToken) {
      throw tooMany(
        `this token already has ${tokenCount} event streams open; the limit is ${this.limits.perToken}`,
        "max_streams_per_token",
      );
    }
    if (addressCount >= this.limits.perAddress) {
      throw tooMany(
        `this address already has ${addressCount} event streams open; the limit is ${this.limits.perAddress}`,
        "max_streams_per_address",
      );
    }
    this.byToken.set(holder.tokenId, tokenCount + 1);
    this.byAddress.set(holder.address, addressCount + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      decrement(this.byToken, holder.tokenId);
      decrement(this.byAddress, holder.address);
    };
  }

  /** Streams open now for `holder`'s token and address. */
  count(holder: StreamHolder): { token: number; address: number } {
    return {
      token: this.byToken.get(holder.tokenId) ?? 0,
      address: this.byAddress.get(holder.address) ?? 0,
    };
  }
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 0) - 1;
  if (n > 0) map.set(key, n);
  else map.delete(key);
}

function tooMany(message: string, key: string): LobuError {
  return new LobuError("too_many_streams", message, {
    status: 429,
    hint: `Close event streams you no longer read (each message's stream ends with its turn), or poll GET /api/v1/messages/{id} instead; retry after ${STREAM_RETRY_AFTER_SEC} s. Operators set the cap with [gateway] ${key}.`,
    details: { retryAfterSec: STREAM_RETRY_AFTER_SEC },
  });
}

/**
 * The client's address as the socket sees it (behind a reverse proxy, the
 * proxy's), as the per-address cap counts it. IPv4-mapped IPv6
 * (`::ffff:10.0.0.1`) counts as the IPv4 address. Any other IPv6 address
 * counts as its /64: one host is routinely given a whole /64 and can send from
 * any address in it, so counting single addresses would be no cap at all.
 */
export function clientAddress(c: { env: unknown }): string {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  const address = env?.incoming?.socket?.remoteAddress ?? "unknown";
  if (address.startsWith("::ffff:") && address.includes(".")) return address.slice(7);
  const bare = address.split("%")[0]!;
  if (!address.includes(":") || !ipaddr.IPv6.isValid(bare)) return address;
  const parts = ipaddr.IPv6.parse(bare).parts.slice(0, 4);
  return `${parts.map((p) => p.toString(16)).join(":")}::/64`;
}
