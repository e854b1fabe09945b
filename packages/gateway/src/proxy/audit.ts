/**
 * What the egress proxy records about every decision. Never contains a secret or
 * a placeholder value: only the names of the secrets that were swapped in.
 */
export type EgressDecision =
  /** Forwarded as is (plain HTTP, or a request inside an intercepted tunnel). */
  | "allowed"
  /** Forwarded with placeholders replaced by real secrets. */
  | "swapped"
  /** Refused by domain policy, the address guard, identity or a limit. */
  | "denied"
  /** CONNECT relayed as raw TCP (no placeholders bound to the host). */
  | "tunnel"
  /** CONNECT terminated with the Lobu CA so bound placeholders can be swapped. */
  | "intercept"
  /** Handed to the gateway's internal API (`/__lobu/*`). */
  | "internal"
  /** Allowed, but the upstream failed (connect error, timeout, bad response). */
  | "error";

export interface EgressAuditRecord {
  /** Epoch ms. */
  at: number;
  /** Null when the sandbox could not be identified (pool without a header, bad request). */
  sandboxId: string | null;
  agentId?: string;
  method: string;
  host: string;
  port: number;
  decision: EgressDecision;
  reason: string;
  /** HTTP status returned to the sandbox (for tunnels: of the CONNECT response). */
  status?: number;
  /** Names of the secrets swapped into the request. */
  secrets?: string[];
  /** Placeholders present in the request but left as they were (not bound to this host). */
  unswapped?: number;
  /** Why those placeholders were left alone (names secrets, never shows values or placeholders). */
  notes?: string[];
}

export type AuditSink = (record: EgressAuditRecord) => void;
