import type { Logger } from "pino";
import { z } from "zod";
import type { Store } from "../store/port.ts";
import { readRecord } from "../util/stored-record.ts";

/** One entry of the `audit` stream. */
export const AuditRecord = z.object({
  at: z.number(),
  /** Dotted action name: `egress.denied`, `secret.set`, `approval.answered`, `sandbox.reset`, ... */
  action: z.string(),
  /** Who did it: `api:<token id>`, `slack:T1:U2`, `sandbox:<id>`, `system`. */
  actor: z.string(),
  agentId: z.string().optional(),
  sandboxId: z.string().optional(),
  /** Free-form details; never secret values. */
  details: z.record(z.string(), z.unknown()).optional(),
});
export type AuditRecord = z.infer<typeof AuditRecord>;

export interface UsageEntry {
  at: number;
  agentId: string;
  userKey?: string;
  provider: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  /** Of `inputTokens`: read from / written to the provider's prompt cache. */
  cacheReadTokens?: number;
  cacheWriteTokens?: number;
  status: number;
}

/** Token use of one day, agent, person, provider and model. */
export interface UsageTotal {
  day: string;
  agentId: string;
  /** `-` when the relay did not know the person. */
  userKey: string;
  provider: string;
  /** "" for records from before models were counted. */
  model: string;
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  requests: number;
}

const AUDIT_STREAM = "audit";
const USAGE_STREAM = "usage";
const AUDIT_MAX = 100_000;

/** Append-only audit and usage records on the store's streams. */
export class AuditLog {
  private readonly store: Store;
  private readonly log: Logger;

  constructor(store: Store, log: Logger) {
    this.store = store;
    this.log = log;
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
        const source = { record: "audit record", key: `${AUDIT_STREAM} ${e.id}` };
        const rec = readRecord(AuditRecord, e.data, source, this.log);
        if (!rec) continue;
        if (!opts.action || rec.action.startsWith(opts.action)) out.push({ ...rec, id: e.id });
        if (out.length >= want) break;
      }
      before = page[page.length - 1]!.id;
    }
    return out;
  }

  /** Record one model call; resolves once counted (callers on the hot path need not wait). */
  usage(entry: UsageEntry): Promise<void> {
    const writes: Promise<unknown>[] = [
      this.store.streams.append(USAGE_STREAM, JSON.stringify(entry), { maxLen: AUDIT_MAX }),
    ];
    const counts: [Kind, number][] = [
      ["in", entry.inputTokens],
      ["out", entry.outputTokens],
      ["cr", entry.cacheReadTokens ?? 0],
      ["cw", entry.cacheWriteTokens ?? 0],
      ["req", 1],
    ];
    const base = usageKey(entry);
    for (const [kind, n] of counts) {
      const by = Math.round(n);
      if (by > 0) writes.push(this.store.kv.incr(`${base}:${kind}`, by));
    }
    return Promise.all(writes).then(
      () => {},
      () => {},
    );
  }

  /** Totals per day, agent, person, provider and model since `sinceDay` (YYYY-MM-DD), newest day first. */
  async usageTotals(sinceDay?: string): Promise<UsageTotal[]> {
    const rows = new Map<string, UsageTotal>();
    for (const { key, value } of await this.store.kv.list("usage:")) {
      const parsed = parseUsageKey(key);
      if (!parsed || (sinceDay && parsed.day < sinceDay)) continue;
      const { kind, ...id } = parsed;
      const rowId = `${id.day}|${id.agentId}|${id.userKey}|${id.provider}|${id.model}`;
      const row = rows.get(rowId) ?? {
        ...id,
        inputTokens: 0,
        outputTokens: 0,
        cacheReadTokens: 0,
        cacheWriteTokens: 0,
        requests: 0,
      };
      const n = Number(value);
      if (kind === "in") row.inputTokens += n;
      else if (kind === "out") row.outputTokens += n;
      else if (kind === "cr") row.cacheReadTokens += n;
      else if (kind === "cw") row.cacheWriteTokens += n;
      else row.requests += n;
      rows.set(rowId, row);
    }
    return [...rows.values()].sort(
      (a, b) =>
        b.day.localeCompare(a.day) ||
        a.agentId.localeCompare(b.agentId) ||
        a.userKey.localeCompare(b.userKey) ||
        a.provider.localeCompare(b.provider) ||
        a.model.localeCompare(b.model),
    );
  }
}

type Kind = "in" | "out" | "cr" | "cw" | "req";

/**
 * Usage counters: `usage:m:<day>:<agent>:<provider>:<model>:<person>:<kind>`,
 * model and person URI-encoded (model ids and person keys contain `:`).
 * Counters written before models were counted,
 * `usage:<day>:<agent>:<person>:<provider>:<in|out|req>`, are still read.
 */
function usageKey(e: UsageEntry): string {
  const day = new Date(e.at).toISOString().slice(0, 10);
  return `usage:m:${day}:${e.agentId}:${e.provider}:${encodeURIComponent(e.model)}:${encodeURIComponent(e.userKey ?? "-")}`;
}

function parseUsageKey(
  key: string,
):
  | { day: string; agentId: string; userKey: string; provider: string; model: string; kind: Kind }
  | undefined {
  const current =
    /^usage:m:(\d{4}-\d{2}-\d{2}):([^:]+):([^:]+):([^:]*):([^:]+):(in|out|cr|cw|req)$/.exec(key);
  if (current) {
    const [, day, agentId, provider, model, userKey, kind] = current as unknown as string[];
    try {
      return {
        day: day!,
        agentId: agentId!,
        provider: provider!,
        model: decodeURIComponent(model!),
        userKey: decodeURIComponent(userKey!),
        kind: kind as Kind,
      };
    } catch {
      return undefined;
    }
  }
  const legacy = /^usage:(\d{4}-\d{2}-\d{2}):([^:]+):(.*):([^:]+):(in|out|req)$/.exec(key);
  if (!legacy) return undefined;
  const [, day, agentId, userKey, provider, kind] = legacy as unknown as string[];
  return {
    day: day!,
    agentId: agentId!,
    userKey: userKey!,
    provider: provider!,
    model: "",
    kind: kind as Kind,
  };
}
