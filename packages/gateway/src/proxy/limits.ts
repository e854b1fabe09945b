import type { ForwardLimits } from "./forwarding.ts";

/** How much an egress endpoint accepts, and for how long it waits. */
export interface EgressLimits extends ForwardLimits {
  /** Largest request head (request line + headers); larger → 431. */
  maxHeaderBytes: number;
  /** Time for a client to send a complete request. */
  requestTimeoutMs: number;
  /** Time for a client to send the request head. */
  headersTimeoutMs: number;
  /** Open CONNECT tunnels per sandbox; more → 429. */
  maxTunnelsPerSandbox: number;
}

export const DEFAULT_EGRESS_LIMITS: EgressLimits = {
  maxHeaderBytes: 32 * 1024,
  requestTimeoutMs: 300_000,
  headersTimeoutMs: 30_000,
  upstreamConnectTimeoutMs: 10_000,
  // LLM calls can think for minutes before the first byte.
  idleTimeoutMs: 600_000,
  maxTunnelsPerSandbox: 64,
  maxSwapBodyBytes: 8 * 1024 * 1024,
};
