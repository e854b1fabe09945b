import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, parseConfig } from "@lobu/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog, type UsageEntry } from "../../src/audit/log.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { Budgets } from "../../src/usage/budgets.ts";

/**
 * Audit and usage writes the store refuses: retried, and when the store keeps
 * refusing, logged at error with the whole record and counted. A real SQLite
 * store, behind a test double of the store port that refuses a given number
 * of appends or counter increments first.
 */

/** `store` whose stream appends / counter increments throw the first `n` times (Infinity: always). */
function refusing(store: Store, refuse: { append?: number; incr?: number }): Store {
  let appends = refuse.append ?? 0;
  let incrs = refuse.incr ?? 0;
  const failing = <T extends object>(target: T, method: string, left: () => boolean): T =>
    new Proxy(target, {
      get(t, prop) {
        const value = Reflect.get(t, prop, t);
        if (typeof value !== "function") return value;
        if (prop !== method) return value.bind(t);
        return async (...args: unknown[]) => {
          if (left()) throw new Error("store unavailable");
          return value.apply(t, args);
        };
      },
    });
  const streams = failing(store.streams, "append", () => appends-- > 0);
  const kv = failing(store.kv, "incr", () => incrs-- > 0);
  return new Proxy(store, {
    get(t, prop) {
      if (prop === "streams") return streams;
      if (prop === "kv") return kv;
      const value = Reflect.get(t, prop, t);
      return typeof value === "function" ? value.bind(t) : value;
    },
  });
}

function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("audit-test", {
    level: "debug",
    destination: { write: (line: string) => lines.push(JSON.parse(line)) },
  });
  return { log, lines, at: (level: number) => lines.filter((l) => l.level === level) };
}
const DEBUG = 20;
const ERROR = 50;
/** No waiting between attempts: the test is about what happens, not when. */
const NO_WAIT = [0, 0, 0];

const RECORD = {
  action: "secret.set",
  actor: "api:tok_1",
  agentId: "research",
  details: { name: "GITHUB_TOKEN" },
};
const CALL: UsageEntry = {
  at: Date.parse("2026-03-14T10:00:00Z"),
  agentId: "research",
  userKey: "slack:T1:U2",
  provider: "anthropic",
  model: "claude-sonnet-4-5",
  inputTokens: 1200,
  outputTokens: 300,
  status: 200,
};

let dir: string;
let store: Store;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "lobu-audit-"));
  store = await createStore({ driver: "sqlite", path: join(dir, "a.db") });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("audit writes", () => {
  it("retries a write the store refuses a few times, and the record lands", async () => {
    const { log, at } = capturedLog();
    const audit = new AuditLog(refusing(store, { append: 2 }), { log, retryDelaysMs: NO_WAIT });
    audit.record(RECORD);
    await audit.flush();

    expect(await audit.recent()).toEqual([expect.objectContaining(RECORD)]);
    expect(audit.writeFailures).toEqual({ audit: 0, usage: 0 });
    expect(at(DEBUG).map((l) => [l.msg, l.attempt])).toEqual([
      ["audit write refused; retrying", 1],
      ["audit write refused; retrying", 2],
    ]);
    expect(at(ERROR)).toEqual([]);
  });

  it("logs a record the store refuses on every attempt at error, whole, and counts it", async () => {
    const { log, at } = capturedLog();
    const audit = new AuditLog(refusing(store, { append: Infinity }), {
      log,
      retryDelaysMs: NO_WAIT,
    });
    audit.record(RECORD);
    audit.record({ action: "token.revoked", actor: "api:tok_1", details: { id: "tok_2" } });
    await audit.flush();

    expect(audit.writeFailures).toEqual({ audit: 2, usage: 0 });
    const errors = at(ERROR);
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatchObject({
      msg: "audit record lost: the store refused it on every attempt",
      record: { ...RECORD, at: expect.any(Number) },
      err: "store unavailable",
      attempts: 4,
    });
    expect(errors[1]).toMatchObject({ record: { action: "token.revoked" } });
    // Nothing reached the store.
    expect(await new AuditLog(store).recent()).toEqual([]);
  });
});

describe("usage writes", () => {
  it("retries a refused counter on its own: the call is counted once", async () => {
    const { log, at } = capturedLog();
    const audit = new AuditLog(refusing(store, { append: 1, incr: 2 }), {
      log,
      retryDelaysMs: NO_WAIT,
    });
    await audit.usage(CALL);

    expect(await audit.usageTotals()).toEqual([
      expect.objectContaining({ inputTokens: 1200, outputTokens: 300, requests: 1 }),
    ]);
    expect((await store.streams.range("usage")).map((e) => JSON.parse(e.data))).toEqual([CALL]);
    expect(audit.writeFailures).toEqual({ audit: 0, usage: 0 });
    expect(at(ERROR)).toEqual([]);
  });

  it("logs a call whose counters the store keeps refusing at error, and counts it", async () => {
    const { log, at } = capturedLog();
    const audit = new AuditLog(refusing(store, { incr: Infinity }), {
      log,
      retryDelaysMs: NO_WAIT,
    });
    await audit.usage(CALL);

    expect(audit.writeFailures).toEqual({ audit: 0, usage: 1 });
    expect(at(ERROR)).toEqual([
      expect.objectContaining({
        msg: expect.stringMatching(/^usage record lost: .*undercounts this model call$/),
        usage: CALL,
        lost: ["inputTokens", "outputTokens", "requests"],
        err: "store unavailable",
      }),
    ]);
    // The record itself landed: only the counters the report sums are short.
    expect(await store.streams.length("usage")).toBe(1);
    expect(await audit.usageTotals()).toEqual([]);
  });
});

describe("budget counters", () => {
  it("report tokens they could not count: for whom and how many", async () => {
    const reported: { lost: string; context: Record<string, unknown> }[] = [];
    const budgets = new Budgets({
      kv: refusing(store, { incr: Infinity }).kv,
      config: parseConfig("[budgets.per_user]\ntokens_per_day = 1000\n"),
      onError: (_err, lost, context) => reported.push({ lost, context }),
    });
    budgets.record({
      agentId: "research",
      userKey: "slack:T1:U2",
      inputTokens: 40,
      outputTokens: 2,
    });
    // Admission waits for counter writes in flight, so this returns after the report.
    await budgets.checkTurn({ agentId: "research", userKey: "slack:T1:U2" });

    expect(reported).toEqual([
      {
        lost: expect.stringMatching(/^tokens not counted against every budget/),
        context: { agentId: "research", userKey: "slack:T1:U2", tokens: 42 },
      },
    ]);
  });
});
