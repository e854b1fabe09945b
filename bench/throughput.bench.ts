/**
 * End-to-end messages per second: REST API → durable queue → dispatcher → warm
 * sandboxed worker (real pi runtime) → mock LLM → reply recorded, for each
 * driver. Sandboxes are warmed first, so this measures the steady state of a
 * busy gateway, not cold wakes (see sandbox-latency).
 *
 * Then the virtual tier against the number of distinct users sending at once
 * (`throughput-virtual-sweep`): every user sends MESSAGES_IN_SWEEP messages one
 * after another, all users at once; a message is lost when it was accepted and
 * its turn did not end `done` (a refusal, e.g. a 429, is counted apart). LOBU_BENCH_SWEEP=8,100,1000 overrides the sizes.
 */
import {
  type BenchResult,
  type BenchRow,
  median,
  percentile,
  quick,
  round,
  scaled,
} from "./lib.ts";
import { inParallel, startBenchGateway } from "./sandbox-kit.ts";

const USERS = 8;
const MESSAGES_PER_USER = scaled(12, 4);
const SWEEP = (process.env.LOBU_BENCH_SWEEP ?? (quick ? "8,50" : "8,100,1000"))
  .split(",")
  .map(Number);
const MESSAGES_IN_SWEEP = 3;
/** Turns the gateway runs at once in the sweep (`max_concurrent`). */
const SWEEP_CONCURRENCY = 64;

async function measure(driver: "process" | "virtual"): Promise<BenchRow[]> {
  const bench = await startBenchGateway(
    driver,
    `max_concurrent = ${USERS}\nidle_timeout = "30m"\n`,
  );
  try {
    const users = Array.from({ length: USERS }, (_, i) => `tp-${driver}-${i}`);
    // Warm every sandbox (cold wakes are measured elsewhere).
    await Promise.all(users.map((u) => bench.chat(u, "warm up")));
    const latencies: number[] = [];
    const t0 = performance.now();
    // Each user sends its messages one after another; users run in parallel.
    await Promise.all(
      users.map(async (u) => {
        for (let i = 0; i < MESSAGES_PER_USER; i++) {
          const start = performance.now();
          await bench.chat(u, `message ${i}`);
          latencies.push(performance.now() - start);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const total = USERS * MESSAGES_PER_USER;
    return [
      {
        metric: `${driver}: messages per second`,
        value: round(total / seconds),
        unit: "msg/s",
        note: `${USERS} users × ${MESSAGES_PER_USER} messages, each turn a full pi run`,
      },
      { metric: `${driver}: send → done p50`, value: round(median(latencies)), unit: "ms" },
      { metric: `${driver}: send → done p99`, value: round(percentile(latencies, 99)), unit: "ms" },
    ];
  } finally {
    await bench.close();
  }
}

interface SweepPoint {
  users: number;
  messages: number;
  perSecond: number;
  p50: number;
  p99: number;
  lost: number;
  refused: number;
  /** Why messages were lost: error → count. */
  errors: Record<string, number>;
}

/** The virtual tier with more and more distinct users, on one gateway. */
async function sweep(): Promise<BenchResult> {
  const bench = await startBenchGateway(
    "virtual",
    // Every user holds an event stream while its message runs: lift the per-client caps
    // (one token and one address here stand for many clients).
    `max_concurrent = ${SWEEP_CONCURRENCY}\nidle_timeout = "2h"\npool_size = 2\n` +
      "[gateway]\nmax_streams_per_token = 4096\nmax_streams_per_address = 4096\n",
  );
  const points: SweepPoint[] = [];
  try {
    let warmed = 0;
    const name = (i: number) => `sweep-${i}`;
    for (const n of SWEEP) {
      // Warm the new users (cold wakes are measured elsewhere).
      const fresh = Array.from({ length: Math.max(0, n - warmed) }, (_, i) => name(warmed + i));
      await inParallel(fresh, SWEEP_CONCURRENCY, (u) => bench.chat(u, "warm up"));
      warmed = Math.max(warmed, n);
      const latencies: number[] = [];
      let lost = 0;
      let refused = 0;
      const errors = new Map<string, number>();
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          for (let m = 0; m < MESSAGES_IN_SWEEP; m++) {
            const start = performance.now();
            try {
              await bench.chat(name(i), `sweep ${n} message ${m}`);
              latencies.push(performance.now() - start);
            } catch (err) {
              const why = String((err as Error).message).slice(0, 200);
              if (why.startsWith("message refused")) refused++;
              else lost++;
              errors.set(why, (errors.get(why) ?? 0) + 1);
            }
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      points.push({
        users: n,
        messages: n * MESSAGES_IN_SWEEP,
        perSecond: round((n * MESSAGES_IN_SWEEP) / seconds),
        p50: round(median(latencies)),
        p99: round(percentile(latencies, 99)),
        lost,
        refused,
        errors: Object.fromEntries(errors),
      });
    }
  } finally {
    await bench.close();
  }
  const rows: BenchRow[] = points.flatMap((p) => [
    {
      metric: `virtual, ${p.users} users: messages per second`,
      value: p.perSecond,
      unit: "msg/s",
      note: `${p.messages} messages, ${SWEEP_CONCURRENCY} turns at a time`,
    },
    { metric: `virtual, ${p.users} users: send → done p50`, value: p.p50, unit: "ms" },
    { metric: `virtual, ${p.users} users: send → done p99`, value: p.p99, unit: "ms" },
    { metric: `virtual, ${p.users} users: lost`, value: p.lost, unit: "messages" },
    { metric: `virtual, ${p.users} users: refused`, value: p.refused, unit: "messages" },
  ]);
  return {
    name: "throughput-virtual-sweep",
    rows,
    meta: { points, messagesPerUser: MESSAGES_IN_SWEEP, maxConcurrent: SWEEP_CONCURRENCY },
  };
}

export default async function run(): Promise<BenchResult[]> {
  const rows = [...(await measure("process")), ...(await measure("virtual"))];
  return [
    { name: "throughput", rows, meta: { users: USERS, messagesPerUser: MESSAGES_PER_USER } },
    await sweep(),
  ];
}
