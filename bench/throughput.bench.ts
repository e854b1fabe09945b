/**
 * End-to-end messages per second: REST API → durable queue → dispatcher → warm
 * sandboxed worker (real pi runtime) → mock LLM → reply recorded, for each
 * driver. Sandboxes are warmed first, so this measures the steady state of a
 * busy gateway, not cold wakes (see sandbox-latency).
 */
import { type BenchResult, type BenchRow, median, percentile, round } from "./lib.ts";
import { startBenchGateway } from "./sandbox-kit.ts";

const USERS = 8;
const MESSAGES_PER_USER = 12;

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

export default async function run(): Promise<BenchResult> {
  const rows = [...(await measure("process")), ...(await measure("virtual"))];
  return { name: "throughput", rows, meta: { users: USERS, messagesPerUser: MESSAGES_PER_USER } };
}
