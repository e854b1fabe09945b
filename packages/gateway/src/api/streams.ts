import type { LobuConfig } from "@lobu/core";
import type { Context } from "hono";
import type { ApiEnv } from "../access/auth.ts";
import { clientAddress, type StreamHolder, StreamSlots } from "../http/stream-slots.ts";

/** The API's caps on open event streams (per token, per client address), from `[gateway]`. */
export function apiStreamSlots(config: LobuConfig): StreamSlots {
  return new StreamSlots({
    perToken: config.gateway.max_streams_per_token,
    perAddress: config.gateway.max_streams_per_address,
  });
}

/** Whose share of the caps a request's stream counts against. */
export function streamHolder(c: Context<ApiEnv>): StreamHolder {
  return { tokenId: c.get("token").id, address: clientAddress(c) };
}
