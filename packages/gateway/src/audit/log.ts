import type { Store } from "../store/port.ts";

export interface AuditRecord {
  at: number;
  /** Dotted action name: `egress.denied`, `secret.set`, `approval.answered`, `sandbox.reset`, ... */
  action: string;
  /** Who did it: `api:<token id>`, `slack:T1:U2`, `sandbox:<id>`, `system`. */
  actor: string;
  agentId?: string;
  sandboxId?: string;
  /** Free-form details; never secret values. */
  details?: Record<string, unknown>;
}

export interface UsageEntry {
  at: number;
  agentId: string;
  userKey?: string;
  provider: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  status: number;
}

const AUDIT_STREAM = "audit";
const USAGE_STREAM = "usage";
const AUDIT_MAX = 100_000;

/** Append-only audit and usage records on the store's streams. */
export class AuditLog {
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  record(entry: Omit<AuditRecord, "at"> & { at?: number }): void {
    const full = { at: Date.now(), ...entry };
    void this.store.streams
      .append(AUDIT_STREAM, JSON.stringify(full), { maxLen: AUDIT_MAX })
      .catch(() => {});
  }

  async recent(
    opts: { limit?: number; before?: string; action?: string } = {},
  ): Promise<(AuditRecord & { id: string })[]> {
    const want = opts.limit ?? 100;
    const out: (AuditRecord & { id: string })[] = [];
    let before = opts.before;
    while (out.length < want) {
      const page = await this.store.streams.revRange(AUDIT_STREAM, { before, limit: 500 });
      if (page.length === 0) break;
      for (const e of page) {
        const rec = JSON.parse(e.data) as AuditRecord;
        if (!opts.action || rec.action.startsWith(opts.action)) out.push({ ...rec, id: e.id });
        if (out.length >= want) break;
      }
      before = page[page.length - 1]!.id;
    }
    return out;
  }

  usage(entry: UsageEntry): void {
    void this.store.streams
      .append(USAGE_STREAM, JSON.stringify(entry), { maxLen: AUDIT_MAX })
      .catch(() => {});
    const day = new Date(entry.at).toISOString().slice(0, 10);
    const user = entry.userKey ?? "-";
    for (const k of [`usage:${day}:${entry.agentId}:${user}:${entry.provider}`]) {
      void this.store.kv.incr(`${k}:in`, entry.inputTokens).catch(() => {});
      void this.store.kv.incr(`${k}:out`, entry.outputTokens).catch(() => {});
      void this.store.kv.incr(`${k}:req`, 1).catch(() => {});
    }
  }

  /** Totals per agent, user and provider since `sinceDay` (YYYY-MM-DD). */
  async usageTotals(sinceDay?: string): Promise<
    {
      day: string;
      agentId: string;
      userKey: string;
      provider: string;
      inputTokens: number;
      outputTokens: number;
      requests: number;
    }[]
  > {
    const rows = new Map<
      string,
      {
        day: string;
        agentId: string;
        userKey: string;
        provider: string;
        inputTokens: number;
        outputTokens: number;
        requests: number;
      }
    >();
    for (const { key, value } of await this.store.kv.list("usage:")) {
      const m = /^usage:(\d{4}-\d{2}-\d{2}):([^:]+):(.*):([^:]+):(in|out|req)$/.exec(key);
      if (!m) continue;
      const [, day, agentId, userKey, provider, kind] = m as unknown as [
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      if (sinceDay && day < sinceDay) continue;
      const id = `${day}|${agentId}|${userKey}|${provider}`;
      const row = rows.get(id) ?? {
        day,
        agentId,
        userKey,
        provider,
        inputTokens: 0,
        outputTokens: 0,
        requests: 0,
      };
      const n = Number(value);
      if (kind === "in") row.inputTokens += n;
      else if (kind === "out") row.outputTokens += n;
      else row.requests += n;
      rows.set(id, row);
    }
    return [...rows.values()].sort(
      (a, b) => b.day.localeCompare(a.day) || a.agentId.localeCompare(b.agentId),
    );
  }
}
