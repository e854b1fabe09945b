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
 * `throughput-virtual-redis` runs the same sweep on two gateways sharing a Redis store
 * (REDIS_URL, default 127.0.0.1:6379), users split between them (LOBU_BENCH_REDIS_GATEWAYS=1
 * runs one, to tell the store's cost from the second gateway's). LOBU_BENCH_SKIP_REDIS=1
 * leaves it out; LOBU_BENCH_SKIP_SINGLE=1 leaves out everything else, LOBU_BENCH_SKIP_FIXED=1
 * only the 8-user `throughput` (e.g. to alternate sweeps of two checkouts quickly).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  collectEvents,
  type GatewayProcess,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { Redis } from "ioredis";
import {
  type BenchResult,
  type BenchRow,
  median,
  percentile,
  quick,
  round,
  scaled,
} from "./lib.ts";
import {
  benchGatewayNodeArgs,
  type CpuUse,
  cpuUse,
  inParallel,
  startBenchGateway,
} from "./sandbox-kit.ts";

const KEY = "sk-ant-bench-key-0123456789abcdef";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

const USERS = 8;
const MESSAGES_PER_USER = scaled(12, 4);
const SWEEP = (process.env.LOBU_BENCH_SWEEP ?? (quick ? "8,50" : "8,100,1000"))
  .split(",")
  .map(Number);
const MESSAGES_IN_SWEEP = 3;
/** Turns the gateway runs at once in the sweep (`max_concurrent`). */
const SWEEP_CONCURRENCY = 64;
/** Gateways sharing the Redis store in `throughput-virtual-redis`. */
const REDIS_GATEWAYS = Number(process.env.LOBU_BENCH_REDIS_GATEWAYS ?? 2);

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
  /**
   * CPU per message (ms) over the measured part, from /proc: the gateways' own
   * processes, their pools, and this process (the client and the mock LLM).
   */
  cpuPerMessage?: CpuUse;
}

/** Turn-run options of the sweep: every user holds an event stream while its message runs. */
const SWEEP_TOML =
  `max_concurrent = ${SWEEP_CONCURRENCY}\nidle_timeout = "2h"\npool_size = 2\n` +
  // (one token and one address here stand for many clients: lift the per-client caps)
  "[gateway]\nmax_streams_per_token = 4096\nmax_streams_per_address = 4096\n";

/** The virtual tier with more and more distinct users, on one gateway. */
async function sweep(): Promise<BenchResult> {
  const bench = await startBenchGateway("virtual", SWEEP_TOML);
  try {
    return await sweepOver([bench.chat], "throughput-virtual-sweep", "virtual", [
      bench.gw.child.pid!,
    ]);
  } finally {
    await bench.close();
  }
}

/**
 * The same sweep on two gateways sharing one Redis store and one volumes folder
 * (`[cluster] volumes = "shared"`), each user sending to one of them: what a
 * horizontally scaled installation does with the same load.
 */
async function sweepRedis(): Promise<BenchResult> {
  const llm = await startMockLlm({ apiKey: KEY });
  const prefix = `lobu-bench:${randomBytes(6).toString("hex")}:`;
  const shared = mkdtempSync(join(tmpdir(), "lobu-bench-shared-"));
  const admin = `admin-${randomBytes(12).toString("hex")}`;
  const toml = [
    "[store]",
    'driver = "redis"',
    `redis_url = "${REDIS_URL}"`,
    `key_prefix = "${prefix}"`,
    "[cluster]",
    'volumes = "shared"',
    `volumes_path = "${shared}"`,
    "[sandbox]",
    'driver = "virtual"',
    SWEEP_TOML,
  ].join("\n");
  const env = {
    ANTHROPIC_API_KEY: KEY,
    ANTHROPIC_BASE_URL: llm.url,
    OPENAI_API_KEY: undefined,
    LOBU_LOG_LEVEL: "error",
    LOBU_MASTER_KEY: randomBytes(32).toString("base64"),
    LOBU_ADMIN_TOKEN: admin,
  };
  const gateways: GatewayProcess[] = [];
  try {
    for (let i = 0; i < REDIS_GATEWAYS; i++)
      gateways.push(
        await startGatewayProcess({
          toml,
          env,
          startTimeoutMs: 120_000,
          nodeArgs: benchGatewayNodeArgs(),
        }),
      );
    const chats = gateways.map((gw) => async (user: string, text: string) => {
      const res = await gw.api("/api/v1/agents/default/messages", {
        method: "POST",
        headers: { accept: "text/event-stream", authorization: `Bearer ${admin}` },
        body: JSON.stringify({ user, channel: "bench", text }),
      });
      if (!res.ok) throw new Error(`message refused: ${res.status} ${await res.text()}`);
      const last = (await collectEvents(res)).at(-1);
      if (last?.type !== "done") throw new Error(`turn failed: ${JSON.stringify(last)}`);
      return last.text;
    });
    return await sweepOver(
      chats,
      "throughput-virtual-redis",
      `virtual, ${REDIS_GATEWAYS} gateway${REDIS_GATEWAYS === 1 ? "" : "s"} on Redis`,
      gateways.map((gw) => gw.child.pid!),
    );
  } finally {
    for (const gw of gateways) await gw.stop().catch(() => {});
    await llm.close();
    await dropKeys(prefix);
    rmSync(shared, { recursive: true, force: true });
  }
}

async function dropKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== "0");
  redis.disconnect();
}

/** Runs the sweep; user i sends through `chats[i % chats.length]`. */
async function sweepOver(
  chats: Array<(user: string, text: string) => Promise<string>>,
  name: string,
  label: string,
  gatewayPids: number[],
): Promise<BenchResult> {
  const points: SweepPoint[] = [];
  const userName = (i: number) => `sweep-${i}`;
  const chatOf = (i: number) => chats[i % chats.length]!;
  let warmed = 0;
  let warmupFailures = 0;
  for (const n of SWEEP) {
    // Warm the new users (cold wakes are measured elsewhere).
    const fresh = Array.from({ length: Math.max(0, n - warmed) }, (_, i) => warmed + i);
    // (A failed warm-up is tried once more and counted: it only wakes the sandbox.)
    await inParallel(fresh, SWEEP_CONCURRENCY, (i) =>
      chatOf(i)(userName(i), "warm up").catch(() => {
        warmupFailures++;
        return chatOf(i)(userName(i), "warm up again");
      }),
    );
    warmed = Math.max(warmed, n);
    const latencies: number[] = [];
    let lost = 0;
    let refused = 0;
    const errors = new Map<string, number>();
    const cpuBefore = await cpuUse(gatewayPids);
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        for (let m = 0; m < MESSAGES_IN_SWEEP; m++) {
          const start = performance.now();
          try {
            await chatOf(i)(userName(i), `sweep ${n} message ${m}`);
            latencies.push(performance.now() - start);
          } catch (err) {
            // ("fetch failed" alone hides whether the gateway was reached: name the cause.)
            const cause = (err as { cause?: { code?: string; message?: string } }).cause;
            const why =
              `${(err as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ""}`.slice(
                0,
                200,
              );
            if (why.startsWith("message refused")) refused++;
            else lost++;
            errors.set(why, (errors.get(why) ?? 0) + 1);
          }
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpuAfter = await cpuUse(gatewayPids);
    const messages = n * MESSAGES_IN_SWEEP;
    const perMessage = (k: keyof CpuUse) => round((cpuAfter[k] - cpuBefore[k]) / messages);
    points.push({
      users: n,
      messages,
      perSecond: round(messages / seconds),
      p50: round(median(latencies)),
      p99: round(percentile(latencies, 99)),
      lost,
      refused,
      errors: Object.fromEntries(errors),
      ...(cpuAfter.gateway > 0 && {
        cpuPerMessage: {
          gateway: perMessage("gateway"),
          pools: perMessage("pools"),
          bench: perMessage("bench"),
        },
      }),
    });
  }
  const rows: BenchRow[] = points.flatMap((p) => [
    {
      metric: `${label}, ${p.users} users: messages per second`,
      value: p.perSecond,
      unit: "msg/s",
      note: `${p.messages} messages, ${SWEEP_CONCURRENCY} turns at a time per gateway`,
    },
    { metric: `${label}, ${p.users} users: send → done p50`, value: p.p50, unit: "ms" },
    { metric: `${label}, ${p.users} users: send → done p99`, value: p.p99, unit: "ms" },
    { metric: `${label}, ${p.users} users: lost`, value: p.lost, unit: "messages" },
    { metric: `${label}, ${p.users} users: refused`, value: p.refused, unit: "messages" },
    ...(p.cpuPerMessage
      ? [
          {
            metric: `${label}, ${p.users} users: gateway CPU per message`,
            value: p.cpuPerMessage.gateway,
            unit: "ms",
            note: "the gateways' own processes (/proc)",
          },
          {
            metric: `${label}, ${p.users} users: pools' CPU per message`,
            value: p.cpuPerMessage.pools,
            unit: "ms",
          },
          {
            metric: `${label}, ${p.users} users: client and mock LLM CPU per message`,
            value: p.cpuPerMessage.bench,
            unit: "ms",
          },
        ]
      : []),
  ]);
  return {
    name,
    rows,
    meta: {
      points,
      gateways: chats.length,
      messagesPerUser: MESSAGES_IN_SWEEP,
      maxConcurrent: SWEEP_CONCURRENCY,
      warmupFailures,
    },
  };
}

export default async function run(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  if (!process.env.LOBU_BENCH_SKIP_SINGLE) {
    if (!process.env.LOBU_BENCH_SKIP_FIXED) {
      const rows = [...(await measure("process")), ...(await measure("virtual"))];
      results.push({
        name: "throughput",
        rows,
        meta: { users: USERS, messagesPerUser: MESSAGES_PER_USER },
      });
    }
    results.push(await sweep());
  }
  if (!process.env.LOBU_BENCH_SKIP_REDIS) results.push(await sweepRedis());
  return results;
}
