import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LobuConfig } from "@lobu/core";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { AgentRegistry } from "../../src/agents/registry.ts";
import { AuditLog } from "../../src/audit/log.ts";
import { Inbound } from "../../src/conversations/inbound.ts";
import { Conversations } from "../../src/conversations/records.ts";
import type { Origin } from "../../src/domain/origin.ts";
import { scheduleTools } from "../../src/runtime/schedule-tools.ts";
import { ScheduleStore } from "../../src/schedules/records.ts";
import { runText, Scheduler } from "../../src/schedules/scheduler.ts";
import { nextCronRun, planSchedule, type TimingLimits } from "../../src/schedules/timing.ts";
import { createStore, type Store } from "../../src/store/index.ts";
import { waitFor } from "../store/contract.ts";

/**
 * Schedules below the tools: when a `when` is accepted or refused, and how a
 * due run is fired exactly once by several schedulers sharing one store (real
 * Redis, the real Inbound and queue: the queue's depth is what is counted).
 */

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const PREFIX = `lobu-test:${randomBytes(6).toString("hex")}:`;
const log = createLogger("test", { destination: { write: () => {} } });
const LIMITS: TimingLimits = {
  minIntervalMs: 3_600_000,
  maxHorizonMs: 30 * 86_400_000,
  defaultTimezone: "UTC",
};
const NOW = Date.parse("2026-12-06T08:00:00Z");
const alice: Origin = {
  platform: "slack",
  workspace: "T1",
  channelId: "C1",
  threadId: "1700000000.000100",
  userId: "UALICE",
  isDirect: false,
};

const opened: Store[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const s of opened) await s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${PREFIX}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
  await redis.quit();
});

async function redisStore(scope: string): Promise<Store> {
  const store = await createStore({
    driver: "redis",
    url: REDIS_URL,
    prefix: `${PREFIX}${scope}:`,
  });
  opened.push(store);
  return store;
}

async function sqliteStore(): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), "lobu-schedules-"));
  dirs.push(dir);
  const store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
  opened.push(store);
  return store;
}

/** One gateway's view of a store: its schedules, its Inbound, its scheduler. */
function gatewayOn(store: Store, owner: string) {
  const config = LobuConfig.parse({});
  const schedules = new ScheduleStore({ kv: store.kv, log, maxPerPerson: 3 });
  const inbound = new Inbound({
    agents: new AgentRegistry(store.kv, config, log),
    queue: store.queue,
    conversations: new Conversations(store, log),
    maxMessageBytes: 32_768,
  });
  const scheduler = new Scheduler({
    schedules,
    submit: (m) => inbound.submit(m),
    audit: new AuditLog(store, { log }),
    log,
    owner,
    pollMs: 50,
  });
  return { schedules, scheduler };
}

describe("when a schedule runs", () => {
  it("accepts a delay, a wall-clock time in a zone and a cron pattern", () => {
    expect(planSchedule({ in: "90m" }, LIMITS, NOW)).toEqual({
      kind: "once",
      timezone: "UTC",
      nextRunAt: NOW + 90 * 60_000,
    });
    // 09:00 in Berlin in December is 08:00 UTC.
    expect(
      planSchedule({ at: "2026-12-07T09:00", timezone: "Europe/Berlin" }, LIMITS, NOW).nextRunAt,
    ).toBe(Date.parse("2026-12-07T08:00:00Z"));
    expect(planSchedule({ at: "2026-12-07T09:00+01:00" }, LIMITS, NOW).nextRunAt).toBe(
      Date.parse("2026-12-07T08:00:00Z"),
    );
    const cron = planSchedule({ cron: "0 9 * * 1-5", timezone: "America/New_York" }, LIMITS, NOW);
    // Monday 7 December, 09:00 in New York (EST, UTC-5).
    expect(cron).toMatchObject({ kind: "cron", cron: "0 9 * * 1-5" });
    expect(new Date(cron.nextRunAt).toISOString()).toBe("2026-12-07T14:00:00.000Z");
  });

  it("follows daylight saving time in the schedule's zone", () => {
    // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC after the change on 29 March 2026.
    const before = Date.parse("2026-03-27T12:00:00Z");
    expect(new Date(nextCronRun("0 9 * * *", "Europe/Berlin", before)!).toISOString()).toBe(
      "2026-03-28T08:00:00.000Z",
    );
    expect(
      new Date(
        nextCronRun("0 9 * * *", "Europe/Berlin", Date.parse("2026-03-28T12:00:00Z"))!,
      ).toISOString(),
    ).toBe("2026-03-29T07:00:00.000Z");
  });

  it("moves a wall-clock time the clocks skip to the hour after, and says so", async () => {
    const year = { ...LIMITS, maxHorizonMs: 366 * 86_400_000 };
    // 02:30 on 28 March 2027 does not exist in Berlin (02:00 CET becomes 03:00 CEST).
    const gap = planSchedule({ at: "2027-03-28T02:30", timezone: "Europe/Berlin" }, year, NOW);
    expect(new Date(gap.nextRunAt).toISOString()).toBe("2027-03-28T01:30:00.000Z");
    expect(gap).toMatchObject({
      kind: "once",
      note: "2027-03-28 02:30 does not exist in Europe/Berlin (the clocks skip it), so it runs at 03:30",
    });
    // 02:30 on 31 October 2027 happens twice: the first one, and no note.
    const twice = planSchedule({ at: "2027-10-31T02:30", timezone: "Europe/Berlin" }, year, NOW);
    expect(new Date(twice.nextRunAt).toISOString()).toBe("2027-10-31T00:30:00.000Z");
    expect(twice).not.toHaveProperty("note");
    // A cron time in the gap runs once that day, when the clocks reach it (03:00 CEST).
    const after = Date.parse("2027-03-27T12:00:00Z");
    expect(new Date(nextCronRun("30 2 * * *", "Europe/Berlin", after)!).toISOString()).toBe(
      "2027-03-28T01:00:00.000Z",
    );
    // The person hears it from the tool.
    const store = await sqliteStore();
    const { schedule } = scheduleTools({
      schedules: new ScheduleStore({ kv: store.kv, log, maxPerPerson: 3 }),
      scheduler: { wake: () => {} },
      limits: { ...year, maxTextChars: 2_000, maxMessageBytes: 32_768 },
    });
    const ctx = { agentId: "default", userKey: "slack:T1:UALICE", origin: alice } as never;
    await expect(
      schedule.execute(
        { text: "call Bob", at: "2027-03-28T02:30", timezone: "Europe/Berlin" },
        ctx,
      ),
    ).resolves.toMatch(
      /^Scheduled sch_\w+: once at 2027-03-28 03:30 Europe\/Berlin; 2027-03-28 02:30 does not exist in Europe\/Berlin \(the clocks skip it\), so it runs at 03:30\.$/,
    );
  });

  const refusals: [string, Parameters<typeof planSchedule>[0], RegExp][] = [
    ["a time in the past", { at: "2026-12-01T09:00" }, /is in the past \(it is now 2026-12-06/],
    [
      "a garbage time zone",
      { in: "1h", timezone: "Mars/Olympus" },
      /"Mars\/Olympus" is not a time zone/,
    ],
    [
      "a cron more frequent than the minimum",
      { cron: "*/5 * * * *" },
      /runs every 5m at times; recurring schedules may run at most every 1h/,
    ],
    ["a cron frequent only within one hour", { cron: "0,30 9 * * *" }, /runs every 30m at times/],
    ["a cron with six fields", { cron: "0 0 9 * * *" }, /is not a cron pattern/],
    ["garbage as a cron", { cron: "every morning" }, /is not a cron pattern/],
    ["garbage as a time", { at: "tomorrow at 9" }, /is not a date and time/],
    ["an impossible date", { at: "2026-13-45T09:00" }, /is not a date and time/],
    // Not rolled over into March (the platform's Date would make it 2 March).
    ["a day the month does not have", { at: "2027-02-30T09:00" }, /is not a date and time/],
    [
      "a day the month does not have, with an offset",
      { at: "2027-02-29T09:00Z" },
      /is not a date and time/,
    ],
    ["an hour that does not exist", { at: "2026-12-24T24:30" }, /is not a date and time/],
    ["garbage as a delay", { in: "soon" }, /is not a delay/],
    ["a time beyond the horizon", { in: "31d" }, /more than 30d ahead/],
    ["two ways at once", { in: "1h", cron: "0 9 * * *" }, /only one of at, in and cron/],
    ["no time at all", {}, /say when/],
  ];
  it.each(refusals)("refuses %s with a clear error", (_what, when, message) => {
    let error: unknown;
    try {
      planSchedule(when, LIMITS, NOW);
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code: "invalid_schedule", status: 400 });
    expect((error as Error).message).toMatch(message);
  });

  it("refuses a huge text before anything is stored", async () => {
    const { schedule } = scheduleTools({
      schedules: new ScheduleStore({ kv: (await sqliteStore()).kv, log, maxPerPerson: 3 }),
      scheduler: { wake: () => {} },
      limits: { ...LIMITS, maxTextChars: 2_000, maxMessageBytes: 32_768 },
    });
    const parsed = schedule.input.safeParse({ text: "x".repeat(2_001), in: "1h" });
    expect(parsed.success).toBe(false);
    expect(JSON.stringify(parsed.error?.issues)).toMatch(/at most 2000 characters/);
  });
});

describe("firing", () => {
  it("fires a due run once across four gateways sharing Redis, through the durable queue", async () => {
    const stores = await Promise.all([1, 2, 3, 4].map(() => redisStore("four")));
    const gateways = stores.map((s, i) => gatewayOn(s, `gw-${i}`));
    const created = await gateways[0]!.schedules.create({
      agentId: "default",
      origin: alice,
      text: "remind alice to stretch",
      plan: { kind: "once", timezone: "UTC", nextRunAt: Date.now() - 1_000 },
    });
    for (const g of gateways) g.scheduler.start();
    await waitFor(async () => (await stores[0]!.queue.depth()) === 1, "the run's message");
    await waitFor(
      async () => (await gateways[0]!.schedules.listAll()).length === 0,
      "the fired reminder to be done",
    );
    // Several more passes of every scheduler: nothing more is enqueued.
    for (let i = 0; i < 5; i++) for (const g of gateways) g.scheduler.wake();
    await new Promise((r) => setTimeout(r, 300));
    for (const g of gateways) await g.scheduler.stop();
    const pending = await stores[0]!.queue.pending();
    expect(pending).toHaveLength(1);
    const turn = JSON.parse(pending[0]!.payload) as {
      origin: Origin;
      text: string;
      scheduleId?: string;
    };
    // The same conversation and thread, from the same person; the turn knows it is this run.
    expect(turn.origin).toEqual(alice);
    expect(turn.scheduleId).toBe(created.id);
    expect(turn.text).toBe(
      `[scheduled: reminder ${created.id}, set by this person] remind alice to stretch`,
    );
  });

  it("lets only one of many concurrent claims win (SQLite)", async () => {
    const store = await sqliteStore();
    const schedules = new ScheduleStore({ kv: store.kv, log, maxPerPerson: 3 });
    const s = await schedules.create({
      agentId: "default",
      origin: alice,
      text: "x",
      plan: { kind: "once", timezone: "UTC", nextRunAt: Date.now() - 1 },
    });
    const claims = await Promise.all(
      Array.from({ length: 8 }, (_, i) => schedules.claim(s, `gw-${i}`, 60_000)),
    );
    expect(claims.filter(Boolean)).toHaveLength(1);
    // While the winner's lease holds, nobody else gets the run.
    expect(await schedules.claim(s, "later", 60_000)).toBeNull();
    // A claim whose lease lapsed (its gateway died before settling) is taken over.
    const s2 = await schedules.create({
      agentId: "default",
      origin: alice,
      text: "y",
      plan: { kind: "once", timezone: "UTC", nextRunAt: Date.now() - 1 },
    });
    expect(await schedules.claim(s2, "dead", 0)).not.toBeNull();
    expect(await schedules.claim(s2, "later", 60_000)).toMatchObject({ claim: { owner: "later" } });
  });

  it("fires the runs of a recurring schedule missed while no gateway ran once, then moves on", async () => {
    const store = await sqliteStore();
    const g = gatewayOn(store, "gw-a");
    const threeDaysAgo = Date.now() - 3 * 86_400_000;
    const created = await g.schedules.create({
      agentId: "default",
      origin: alice,
      text: "daily standup notes",
      plan: { kind: "cron", cron: "0 9 * * *", timezone: "UTC", nextRunAt: threeDaysAgo },
    });
    g.scheduler.start();
    const [after] = await waitFor(async () => {
      const list = await g.schedules.listAll();
      return list[0]?.runs === 1 ? list : undefined;
    }, "the run to be settled");
    await g.scheduler.stop();
    expect(await store.queue.depth()).toBe(1);
    expect(after!.nextRunAt).toBeGreaterThan(Date.now());
    expect(after!.lastRunAt).toBe(threeDaysAgo);
    expect(after!.claim).toBeUndefined();
    const turn = JSON.parse((await store.queue.pending())[0]!.payload) as { text: string };
    expect(turn.text).toContain(`recurring schedule ${created.id} (0 9 * * *)`);
    expect(turn.text).toMatch(/runs late because the gateway was down\] daily standup notes$/);
  });

  it("keeps each person within their limit", async () => {
    const store = await sqliteStore();
    const schedules = new ScheduleStore({ kv: store.kv, log, maxPerPerson: 2 });
    const plan = { kind: "once", timezone: "UTC", nextRunAt: Date.now() + 3_600_000 } as const;
    await schedules.create({ agentId: "default", origin: alice, text: "1", plan });
    await schedules.create({ agentId: "default", origin: alice, text: "2", plan });
    await expect(
      schedules.create({ agentId: "default", origin: alice, text: "3", plan }),
    ).rejects.toMatchObject({ code: "schedule_limit", status: 409 });
    // Another person has their own limit, and sees none of alice's.
    const bob = { ...alice, userId: "UBOB" };
    await schedules.create({ agentId: "default", origin: bob, text: "b", plan });
    expect(await schedules.listFor("default", "slack:T1:UBOB")).toHaveLength(1);
    expect(
      await schedules.cancel(
        "default",
        "slack:T1:UBOB",
        (await schedules.listFor("default", "slack:T1:UALICE"))[0]!.id,
      ),
    ).toBe(false);
  });

  it("drops the schedules of an agent that no longer exists when they come due", async () => {
    const store = await sqliteStore();
    const g = gatewayOn(store, "gw-a");
    await g.schedules.create({
      agentId: "deleted-agent",
      origin: alice,
      text: "never runs",
      plan: { kind: "cron", cron: "0 9 * * *", timezone: "UTC", nextRunAt: Date.now() - 1 },
    });
    g.scheduler.start();
    await waitFor(async () => (await g.schedules.listAll()).length === 0, "the schedule to go");
    await g.scheduler.stop();
    expect(await store.queue.depth()).toBe(0);
  });

  it("refuses a text that would not fit in a message of this gateway", async () => {
    const store = await sqliteStore();
    const schedules = new ScheduleStore({ kv: store.kv, log, maxPerPerson: 3 });
    const { schedule } = scheduleTools({
      schedules,
      scheduler: { wake: () => {} },
      limits: { ...LIMITS, maxTextChars: 2_000, maxMessageBytes: 1_024 },
    });
    const ctx = { agentId: "default", userKey: "slack:T1:UALICE", origin: alice } as never;
    await expect(schedule.execute({ text: "é".repeat(500), in: "1h" }, ctx)).rejects.toThrow(
      /too long for a message on this gateway \(at most 768 bytes\)/,
    );
    expect(await schedules.listAll()).toEqual([]);
    await expect(schedule.execute({ text: "short", in: "1h" }, ctx)).resolves.toMatch(
      /^Scheduled sch_\w+: once at \d{4}-\d\d-\d\d \d\d:\d\d UTC\.$/,
    );
  });

  it("keeps a run from setting the next one sooner than a recurring schedule may run", async () => {
    // A reminder that sets itself again "in 1s" at each run would repeat faster
    // than min_interval allows a cron to.
    const store = await sqliteStore();
    const schedules = new ScheduleStore({ kv: store.kv, log, maxPerPerson: 3 });
    const { schedule } = scheduleTools({
      schedules,
      scheduler: { wake: () => {} },
      limits: { ...LIMITS, maxTextChars: 2_000, maxMessageBytes: 32_768 },
    });
    const run = {
      agentId: "default",
      userKey: "slack:T1:UALICE",
      origin: alice,
      scheduleId: "sch_previous",
    } as never;
    await expect(schedule.execute({ text: "again", in: "1s" }, run)).rejects.toThrow(
      /this turn is a run of schedule sch_previous; a schedule set from it must be at least 1h ahead/,
    );
    await expect(
      schedule.execute({ text: "again", at: new Date(Date.now() + 60_000).toISOString() }, run),
    ).rejects.toThrow(/at least 1h ahead/);
    expect(await schedules.listAll()).toEqual([]);
    await expect(schedule.execute({ text: "later", in: "2h" }, run)).resolves.toMatch(
      /^Scheduled sch_/,
    );
    // Setting and cancelling ask the sender first when others' words are in the context.
    const tools = scheduleTools({
      schedules,
      scheduler: { wake: () => {} },
      limits: { ...LIMITS, maxTextChars: 2_000, maxMessageBytes: 32_768 },
    });
    expect([tools.schedule, tools.cancel, tools.list].map((t) => t.askWhenOthersWrote)).toEqual([
      true,
      true,
      undefined,
    ]);
    // A person's own turn sets a reminder in a minute as before.
    const own = { agentId: "default", userKey: "slack:T1:UALICE", origin: alice } as never;
    await expect(schedule.execute({ text: "soon", in: "1m" }, own)).resolves.toMatch(
      /^Scheduled sch_/,
    );
  });

  it("says in the run's text what it is", () => {
    const s = {
      id: "sch_1",
      kind: "once" as const,
      timezone: "UTC",
      nextRunAt: NOW,
      text: "call Bob",
    };
    expect(runText(s as never, NOW)).toBe(
      "[scheduled: reminder sch_1, set by this person] call Bob",
    );
  });
});
