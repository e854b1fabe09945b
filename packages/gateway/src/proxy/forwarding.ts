import type { PlaceholderLookup } from "../secrets/placeholders.ts";
import type { ResolvedAddress } from "./addresses.ts";
import type { BoundSecrets } from "./bound.ts";
import type { SecretSource } from "./swap.ts";
import type { UpstreamTrust } from "./tunnel.ts";
import type { UpstreamPools } from "./upstream-pools.ts";

/** What the forwarder (forward.ts) is given and what it reports, for one request. */

export interface ForwardTarget {
  protocol: "http:" | "https:";
  /** Canonical host (policy and placeholder bindings are checked against it). */
  host: string;
  port: number;
  /** Request target in origin form (`/path?query`). */
  path: string;
  /** Vetted addresses; the first one is used. */
  addresses: ResolvedAddress[];
}

export interface ForwardLimits {
  upstreamConnectTimeoutMs: number;
  idleTimeoutMs: number;
  maxSwapBodyBytes: number;
}

/**
 * When secrets may travel in cleartext (plain `http://`): `private-only` (default)
 * only to addresses the operator opted into (internal services), `always`, or
 * `never`. Over TLS they always may.
 */
export type PlaintextSwap = "private-only" | "always" | "never";

export interface ForwardDeps {
  placeholders: PlaceholderLookup;
  secrets: SecretSource;
  /** Secrets bound to a host, for redacting every response from it. */
  bound: BoundSecrets;
  /** Upstream connections, per vetted address and TLS name. */
  pools: UpstreamPools;
  /** CAs trusted for upstream TLS; undefined = Node's default store. */
  upstreamCa?: UpstreamTrust;
  limits: ForwardLimits;
  plaintextSwap: PlaintextSwap;
}

export interface ForwardOutcome {
  decision: "allowed" | "swapped" | "error";
  status: number;
  reason: string;
  secrets: string[];
  unswapped: number;
  /** Why placeholders were left alone (secret names, never values or placeholders). */
  notes: string[];
}
