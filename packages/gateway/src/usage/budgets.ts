import { type BudgetLimits, type LobuConfig, LobuError } from "@lobu/core";
import type { BudgetUse } from "@lobu/core/views";
import type { KeyValue } from "../store/port.ts";
import {
  formatWait,
  type Period,
  periodEnd,
  periodId,
  WINDOW_SECONDS,
  windowSeconds,
} from "./periods.ts";

/**
 * Usage budgets: tokens per UTC day and month and model requests per rolling
 * minute, for each person on an agent (`per_user`) and for everyone on an
 * agent together (`per_agent`). Counters live in the store, so every gateway
 * sharing it enforces the same budget. Token use is what the LLM relay metered
 * from the provider's answers, never what a worker says.
 */

export type BudgetScope = "per_user" | "per_agent";
export type LimitName = "tokens_per_day" | "tokens_per_month" | "requests_per_minute";

const SCOPES: BudgetScope[] = ["per_user", "per_agent"];
const LIMITS: LimitName[] = ["tokens_per_day", "tokens_per_month", "requests_per_minute"];
const TOKEN_PERIOD: Record<"tokens_per_day" | "tokens_per_month", Period> = {
  tokens_per_day: "day",
  tokens_per_month: "month",
};
/** Counters outlive their period by this much (late readers, clock skew between gateways). */
const GRACE_MS = 86_400_000;

export interface Limit {
  value: number;
  /** The `lobu.toml` table the limit comes from, for the "ask an admin" hint. */
  section: string;
}
export type ScopeLimits = Partial<Record<LimitName, Limit>>;
export type AgentBudgets = Record<BudgetScope, ScopeLimits>;

/** An agent's budgets: `[agents.<id>.budgets]` over `[budgets]`, limit by limit. */
export function budgetsFor(config: LobuConfig, agentId: string): AgentBudgets {
  const out: AgentBudgets = { per_user: {}, per_agent: {} };
  const own = config.agents[agentId]?.budgets;
  for (const scope of SCOPES) {
    for (const name of LIMITS) {
      const mine: BudgetLimits[LimitName] = own?.[scope][name];
      const value = mine ?? config.budgets[scope][name];
      if (typeof value !== "number") continue; // absent or "unlimited"
      out[scope][name] = {
        value,
        section: mine !== undefined ? `[agents.${agentId}.budgets.${scope}]` : `[budgets.${scope}]`,
      };
    }
  }
  return out;
}

function hasAny(limits: ScopeLimits): boolean {
  return Object.keys(limits).length > 0;
}

/** Why a turn or a model call was refused, with the words a person reads. */
export interface Refusal {
  scope: BudgetScope;
  limit: LimitName;
  value: number;
  used: number;
  agentId: string;
  userKey?: string;
  /** When the budget frees up again (epoch ms). */
  resetsAt: number;
  /** What happened and when it resets (no trailing period). */
  message: string;
  /** What to do about it. */
  hint: string;
}

/** The error code of every budget refusal, on every surface. */
export const BUDGET_EXCEEDED = "budget_exceeded";

/** A refusal as a turn's error, worded like the one `checkTurn` gives before a turn. */
export function budgetError(refusal: Refusal): { code: typeof BUDGET_EXCEEDED; message: string } {
  return { code: BUDGET_EXCEEDED, message: `${refusal.message}. ${refusal.hint}` };
}

export interface Caller {
  agentId: string;
  /** The person the usage is charged to; absent when not known (counted for the agent only). */
  userKey?: string;
}

export interface BudgetsDeps {
  kv: KeyValue;
  config: LobuConfig;
  /** Told once per period, limit and scope when a budget first refuses (the audit log). */
  onExceeded?(refusal: Refusal, where: "turn" | "model_call"): void;
  /** Reports a counter that could not be written: what that lost (in words) and for whom. */
  onError?(err: unknown, lost: string, context: Record<string, unknown>): void;
  /** The clock (tests inject one). */
  now?: () => number;
}

const tokensWord = (n: number) => `${n.toLocaleString("en-US")} token${n === 1 ? "" : "s"}`;
const requestsWord = (n: number) =>
  `${n.toLocaleString("en-US")} model request${n === 1 ? "" : "s"}`;

/** `d:2026-01-31:research:u:slack:T1:U2` style scope suffix; agent ids never contain `:`. */
function scopeKey(agentId: string, userKey: string | undefined): string {
  return userKey === undefined ? `${agentId}:all` : `${agentId}:u:${userKey}`;
}
function tokenKey(period: Period, at: number, agentId: string, userKey?: string): string {
  return `budget:tok:${periodId(period, at)}:${scopeKey(agentId, userKey)}`;
}
function requestKey(second: number, agentId: string, userKey?: string): string {
  return `budget:req:${second}:${scopeKey(agentId, userKey)}`;
}

const LOST_TOKENS =
  "tokens not counted against every budget: budgets undercount them until the period ends";
const LOST_NOTICE = "budget.exceeded not audited: could not tell whether it was already";

export class Budgets {
  private readonly deps: BudgetsDeps;
  private readonly now: () => number;
  /** Counter writes in flight: admission waits for them, so a call never reads stale totals. */
  private readonly pending = new Set<Promise<void>>();

  constructor(deps: BudgetsDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
  }

  /** Count tokens the relay metered against the day's and month's budgets of the agent and the person. */
  record(usage: Caller & { inputTokens: number; outputTokens: number }): void {
    const tokens = Math.round(usage.inputTokens + usage.outputTokens);
    if (!(tokens > 0)) return;
    const at = this.now();
    const writes: Promise<number>[] = [];
    for (const period of ["day", "month"] as const) {
      const ttlMs = periodEnd(period, at) - at + GRACE_MS;
      writes.push(this.deps.kv.incr(tokenKey(period, at, usage.agentId), tokens, { ttlMs }));
      if (usage.userKey !== undefined) {
        writes.push(
          this.deps.kv.incr(tokenKey(period, at, usage.agentId, usage.userKey), tokens, { ttlMs }),
        );
      }
    }
    const done: Promise<void> = Promise.all(writes)
      .then(() => {})
      .catch((err) => {
        const { agentId, userKey } = usage;
        this.deps.onError?.(err, LOST_TOKENS, { agentId, userKey, tokens });
      })
      .finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /**
   * Before a turn starts (no sandbox woken, no model called): throws
   * `budget_exceeded` when the person or the agent is out of tokens or at the
   * request rate limit.
   */
  async checkTurn(caller: Caller): Promise<void> {
    const refusal = await this.check(caller, { take: false });
    if (!refusal) return;
    this.noticeOnce(refusal, "turn");
    throw new LobuError(BUDGET_EXCEEDED, refusal.message, {
      status: 429,
      hint: refusal.hint,
      details: {
        scope: refusal.scope,
        limit: refusal.limit,
        value: refusal.value,
        used: refusal.used,
        resetsAt: new Date(refusal.resetsAt).toISOString(),
      },
    });
  }

  /**
   * Admit one model call: null when it may go ahead (it then counts towards the
   * request rate), else why not. A call admitted under the token budget may
   * take it over; the next one is refused.
   */
  async admit(caller: Caller): Promise<Refusal | null> {
    const refusal = await this.check(caller, { take: true });
    if (refusal) this.noticeOnce(refusal, "model_call");
    return refusal;
  }

  private async check(caller: Caller, opts: { take: boolean }): Promise<Refusal | null> {
    const budgets = budgetsFor(this.deps.config, caller.agentId);
    const scopes = SCOPES.filter(
      (scope) => hasAny(budgets[scope]) && (scope === "per_agent" || caller.userKey !== undefined),
    );
    if (scopes.length === 0) return null;
    await Promise.all(this.pending);
    const at = this.now();
    for (const scope of scopes) {
      const refusal = await this.overTokens(caller, scope, budgets[scope], at);
      if (refusal) return refusal;
    }
    return this.overRate(caller, scopes, budgets, at, opts.take);
  }

  /** The token limit of `scope` that is used up, if any (the one that frees up last). */
  private async overTokens(
    caller: Caller,
    scope: BudgetScope,
    limits: ScopeLimits,
    at: number,
  ): Promise<Refusal | null> {
    const names = (["tokens_per_month", "tokens_per_day"] as const).filter((n) => limits[n]);
    if (names.length === 0) return null;
    const userKey = scope === "per_user" ? caller.userKey : undefined;
    const used = await this.deps.kv.getMany(
      names.map((n) => tokenKey(TOKEN_PERIOD[n], at, caller.agentId, userKey)),
    );
    for (const [i, name] of names.entries()) {
      const limit = limits[name]!;
      const n = Number(used[i] ?? 0);
      if (n < limit.value) continue;
      const period = TOKEN_PERIOD[name];
      const resetsAt = periodEnd(period, at);
      const which = period === "day" ? "daily" : "monthly";
      const when =
        period === "day"
          ? `at 00:00 UTC (in ${formatWait(resetsAt - at)})`
          : `on ${new Date(resetsAt).toISOString().slice(0, 10)} at 00:00 UTC (in ${formatWait(resetsAt - at)})`;
      const message =
        scope === "per_user"
          ? `You have used your ${which} budget of ${tokensWord(limit.value)} for agent "${caller.agentId}"; it resets ${when}`
          : `Agent "${caller.agentId}" has used its ${which} budget of ${tokensWord(limit.value)}, shared by everyone who uses it; it resets ${when}`;
      return {
        scope,
        limit: name,
        value: limit.value,
        used: n,
        agentId: caller.agentId,
        ...(userKey !== undefined ? { userKey } : {}),
        resetsAt,
        message,
        hint: `Ask an admin to raise ${name} in ${limit.section} of lobu.toml.`,
      };
    }
    return null;
  }

  /**
   * Requests in the rolling minute. With `take`, the call takes a slot in each
   * scope first (atomic increments, so concurrent calls cannot all squeeze
   * through) and gives them back when one scope is full.
   */
  private async overRate(
    caller: Caller,
    scopes: BudgetScope[],
    budgets: AgentBudgets,
    at: number,
    take: boolean,
  ): Promise<Refusal | null> {
    const seconds = windowSeconds(at);
    const current = seconds.at(-1)!;
    const taken: string[] = [];
    for (const scope of scopes) {
      const limit = budgets[scope].requests_per_minute;
      if (!limit) continue;
      const userKey = scope === "per_user" ? caller.userKey : undefined;
      let mine = 0;
      if (take) {
        const key = requestKey(current, caller.agentId, userKey);
        mine = await this.deps.kv.incr(key, 1, { ttlMs: 2 * WINDOW_SECONDS * 1000 });
        taken.push(key);
      }
      const earlier = await this.deps.kv.getMany(
        seconds.slice(0, take ? -1 : undefined).map((s) => requestKey(s, caller.agentId, userKey)),
      );
      const counts = earlier.map((v) => Number(v ?? 0));
      // What was admitted before this call: the current second's count minus its own slot.
      if (take) counts.push(mine - 1);
      const admitted = counts.reduce((a, b) => a + b, 0);
      if (admitted < limit.value) continue;
      await Promise.all(taken.map((key) => this.deps.kv.incr(key, -1)));
      // Free again once enough of the oldest requests have left the window.
      let leaving = 0;
      let resetsAt = (current + 1) * 1000;
      for (const [i, n] of counts.entries()) {
        leaving += n;
        if (admitted - leaving < limit.value) {
          resetsAt = (seconds[i]! + WINDOW_SECONDS) * 1000;
          break;
        }
      }
      const wait = `try again in ${formatWait(resetsAt - at)}`;
      return {
        scope,
        limit: "requests_per_minute",
        value: limit.value,
        used: admitted,
        agentId: caller.agentId,
        ...(userKey !== undefined ? { userKey } : {}),
        resetsAt,
        message:
          scope === "per_user"
            ? `You have reached the limit of ${requestsWord(limit.value)} per minute for agent "${caller.agentId}"; ${wait}`
            : `Agent "${caller.agentId}" has reached its limit of ${requestsWord(limit.value)} per minute, shared by everyone who uses it; ${wait}`,
        hint: `Ask an admin to raise requests_per_minute in ${limit.section} of lobu.toml.`,
      };
    }
    return null;
  }

  /** Tell `onExceeded` about a refusal once per period, limit and scope (not per request). */
  private noticeOnce(refusal: Refusal, where: "turn" | "model_call"): void {
    if (!this.deps.onExceeded) return;
    const at = this.now();
    const period =
      refusal.limit === "requests_per_minute"
        ? `r:${Math.floor(at / 60_000)}`
        : periodId(TOKEN_PERIOD[refusal.limit], at);
    const key = `budget:noticed:${refusal.limit}:${period}:${scopeKey(refusal.agentId, refusal.userKey)}`;
    void this.deps.kv
      .set(key, "1", { ifNotExists: true, ttlMs: Math.max(refusal.resetsAt - at, 0) + GRACE_MS })
      .then((first) => {
        if (first) this.deps.onExceeded?.(refusal, where);
      })
      .catch((err) => this.deps.onError?.(err, LOST_NOTICE, { key }));
  }

  /**
   * Budget use of `agentIds` now: one row per agent with a `per_agent` budget,
   * and one per person who used an agent with a `per_user` budget this month.
   */
  async report(agentIds: string[]): Promise<BudgetUse[]> {
    await Promise.all(this.pending);
    const at = this.now();
    const rows: BudgetUse[] = [];
    for (const agentId of agentIds) {
      const budgets = budgetsFor(this.deps.config, agentId);
      if (hasAny(budgets.per_agent))
        rows.push(await this.use(agentId, undefined, budgets.per_agent, at));
      if (!hasAny(budgets.per_user)) continue;
      const prefix = `budget:tok:${periodId("month", at)}:${agentId}:u:`;
      for (const { key } of await this.deps.kv.list(prefix))
        rows.push(await this.use(agentId, key.slice(prefix.length), budgets.per_user, at));
    }
    return rows;
  }

  private async use(
    agentId: string,
    userKey: string | undefined,
    limits: ScopeLimits,
    at: number,
  ): Promise<BudgetUse> {
    const [today, month] = await this.deps.kv.getMany([
      tokenKey("day", at, agentId, userKey),
      tokenKey("month", at, agentId, userKey),
    ]);
    const requests = limits.requests_per_minute
      ? (
          await this.deps.kv.getMany(windowSeconds(at).map((s) => requestKey(s, agentId, userKey)))
        ).reduce((sum, v) => sum + Number(v ?? 0), 0)
      : 0;
    const used = {
      tokensToday: Number(today ?? 0),
      tokensThisMonth: Number(month ?? 0),
      requestsLastMinute: requests,
    };
    const limit = (name: LimitName) => limits[name]?.value ?? null;
    const left = (name: LimitName, n: number) => {
      const l = limit(name);
      return l === null ? null : Math.max(0, l - n);
    };
    const remaining = {
      tokensToday: left("tokens_per_day", used.tokensToday),
      tokensThisMonth: left("tokens_per_month", used.tokensThisMonth),
      requestsLastMinute: left("requests_per_minute", used.requestsLastMinute),
    };
    return {
      agentId,
      userKey: userKey ?? null,
      limits: {
        tokensPerDay: limit("tokens_per_day"),
        tokensPerMonth: limit("tokens_per_month"),
        requestsPerMinute: limit("requests_per_minute"),
      },
      used,
      remaining,
      exhausted: remaining.tokensToday === 0 || remaining.tokensThisMonth === 0,
      resets: {
        day: new Date(periodEnd("day", at)).toISOString(),
        month: new Date(periodEnd("month", at)).toISOString(),
      },
    };
  }
}
