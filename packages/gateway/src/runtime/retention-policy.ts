import type { LobuConfig, RetentionLimits } from "@lobu/core";

export type RetentionKind = keyof RetentionLimits;
export const RETENTION_KINDS: readonly RetentionKind[] = [
  "transcripts",
  "events",
  "files",
  "usage",
  "audit",
];

/**
 * An agent's retention: for each kind, the time before which its data goes
 * (ms since epoch), or undefined to keep it. `[agents.<id>.retention]` over
 * `[retention]`, kind by kind.
 */
export type Cutoffs = Partial<Record<RetentionKind, number>>;

export function cutoffsFor(config: LobuConfig, agentId: string | undefined, now: number): Cutoffs {
  const own = agentId === undefined ? undefined : config.agents[agentId]?.retention;
  const out: Cutoffs = {};
  for (const kind of RETENTION_KINDS) {
    const period = own?.[kind] ?? config.retention[kind];
    if (typeof period === "number") out[kind] = now - period;
  }
  return out;
}

/** Is any retention set at all (else the sweep has nothing to do)? */
export function anyRetention(config: LobuConfig): boolean {
  const sections = [config.retention, ...Object.values(config.agents).map((a) => a.retention)];
  return sections.some((s) => RETENTION_KINDS.some((k) => typeof s[k] === "number"));
}
