import { createLogger, errorMessage } from "@lobu/core";
import type { FailureLog } from "@lobu/core/best-effort";
import { z } from "zod";
import type { Store } from "../store/port.ts";
import { withRetries } from "../util/retry.ts";
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

export const AUDIT_STREAM = "audit";
export const USAGE_STREAM = "usage";
const AUDIT_MAX = 100_000;

/**
 * Waits between attempts of an audit or usage write the store refused: four
 * attempts over about two seconds, enough to ride out a store reconnecting.
 */
export const WRITE_RETRY_DELAYS_MS: readonly number[] = [100, 400, 1_500];

export interface AuditLogOptions {
  /** Where a write given up on is logged (at error, with the whole record). */
  log?: FailureLog;
  /** Waits between attempts of a refused write (default WRITE_RETRY_DELAYS_MS). */
  retryDelaysMs?: readonly number[];
  /** The clock refusals are paced by (tests). */
  now?: () => number;
}

/**
 * Refusals of requests nobody vouched for (a wrong admin token, forged
 * initData, a replayed platform request) are recorded at most this many at
 * once per action, then one per REFUSAL_INTERVAL_MS: otherwise a stranger
 * could push every genuine record out of the capped log (AUDIT_MAX) by
 * repeating one refused request.
 */
export const REFUSAL_BURST = 20;
export const REFUSAL_INTERVAL_MS = 10_000;

interface RefusalPace {
  /** Records that may be written now (refills one per REFUSAL_INTERVAL_MS, up to the burst). */
  allowance: number;
  at: number;
  /** Refusals left out since the last one recorded. */
  suppressed: number;
}

/** Records given up on since this process started (shown by `GET /readyz`). */
export interface WriteFailures {
  audit: number;
  usage: number;
}

/** Usage counter kinds, named for the log line of a lost write. */
const KIND_NAMES = {
  in: "inputTokens",
  out: "outputTokens",
  cr: "cacheReadTokens",
  cw: "cacheWriteTokens",
  req: "requests",
} as const;

/**
 * Append-only audit and usage records on the store's streams. Callers do not
 * wait for a write; a write the store refuses is retried (WRITE_RETRY_DELAYS_MS),
 * and one still refused is logged at error with its record and counted
 * (`writeFailures`): never dropped silently.
 */
export class AuditLog {
  private readonly store: Store;
  readonly #log: FailureLog;
  readonly #retryDelaysMs: readonly number[];
  readonly #failures: WriteFailures = { audit: 0, usage: 0 };
  /** Writes not yet landed or given up on: `flush` waits for them. */
  readonly #pending = new Set<Promise<void>>();
  readonly #now: () => number;
  /** Pace of refusal records, per action (this process). */
  readonly #refusals = new Map<string, RefusalPace>();

  constructor(store: Store, opts: AuditLogOptions = {}) {
    this.store = store;
    this.#log = opts.log ?? createLogger("audit");
    this.#retryDelaysMs = opts.retryDelaysMs ?? WRITE_RETRY_DELAYS_MS;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Record the refusal of a request a stranger can repeat at will, paced per
   * action (REFUSAL_BURST, then one per REFUSAL_INTERVAL_MS). The refusals left
   * out are not lost silently: the next one recorded says how many
   * (`details.suppressed`).
   */
  recordRefusal(entry: Omit<AuditRecord, "at">): void {
    const now = this.#now();
    const pace = this.#refusals.get(entry.action) ?? {
      allowance: REFUSAL_BURST,
      at: now,
      suppressed: 0,
    };
    pace.allowance = Math.min(
      REFUSAL_BURST,
      pace.allowance + Math.max(0, now - pace.at) / REFUSAL_INTERVAL_MS,
    );
    pace.at = now;
    this.#refusals.set(entry.action, pace);
    if (pace.allowance < 1) {
      pace.suppressed++;
      return;
    }
    pace.allowance -= 1;
    const suppressed = pace.suppressed;
    pace.suppressed = 0;
    this.record({
      ...entry,
      at: now,
      ...(suppressed ? { details: { ...entry.details, suppressed } } : {}),
    });
  }

  record(entry: Omit<AuditRecord, "at"> & { at?: number }): void {
    const full: AuditRecord = { at: Date.now(), ...entry };
    const write = this.#retried("audit", () =>
      this.store.streams.append(AUDIT_STREAM, JSON.stringify(full), { maxLen: AUDIT_MAX }),
    ).catch((err: unknown) => {
      this.#failures.audit++;
      this.#log.error(
        { record: full, err: errorMessage(err), attempts: this.#retryDelaysMs.length + 1 },
        "audit record lost: the store refused it on every attempt",
      );
    });
    this.#track(write);
  }

  /** Audit and usage records given up on since this process started. */
  get writeFailures(): WriteFailures {
    return { ...this.#failures };
  }

  /** Resolves once every write started so far has landed or been given up on (shutdown). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** One write, retried; rejects with the last error once the retries are used up. */
  async #retried(kind: keyof WriteFailures, write: () => Promise<unknown>): Promise<void> {
    await withRetries(write, this.#retryDelaysMs, (err, attempt) =>
      this.#log.debug({ kind, attempt, err: errorMessage(err) }, `${kind} write refused; retrying`),
    );
  }

  #track(write: Promise<void>): void {
    this.#pending.add(write);
    void write.finally(() => this.#pending.delete(write));
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
        const rec = readRecord(AuditRecord, e.data, source, this.#log);
        if (!rec) continue;
        if (!opts.action || rec.action.startsWith(opts.action)) out.push({ ...rec, id: e.id });
        if (out.length >= want) break;
      }
      before = page[page.length - 1]!.id;
    }
    return out;
  }

  /**
   * Record one model call; resolves once counted or given up on (callers on the
   * hot path need not wait). The record and each counter are retried on their
   * own, so a retry repeats only the write that was refused. A write that fails
   * after the store applied it (a connection lost mid-reply) may count twice:
   * counting a call twice is preferred to losing it.
   */
  usage(entry: UsageEntry): Promise<void> {
    const writes: [part: string, write: () => Promise<unknown>][] = [
      [
        "record",
        () => this.store.streams.append(USAGE_STREAM, JSON.stringify(entry), { maxLen: AUDIT_MAX }),
      ],
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
      if (by > 0) writes.push([KIND_NAMES[kind], () => this.store.kv.incr(`${base}:${kind}`, by)]);
    }
    const done = Promise.all(
      writes.map(([part, write]) =>
        this.#retried("usage", write).then(
          () => undefined,
          (err: unknown) => ({ part, err }),
        ),
      ),
    ).then((results) => {
      const lost = results.filter((r) => r !== undefined);
      if (lost.length === 0) return;
      this.#failures.usage++;
      this.#log.error(
        { usage: entry, lost: lost.map((l) => l.part), err: errorMessage(lost[0]!.err) },
        "usage record lost: the store refused it on every attempt; the usage report undercounts this model call",
      );
    });
    this.#track(done);
    return done;
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
