/**
 * Idle sandboxes held, and what each one costs in memory, through the whole
 * product: a real `lobu run`, one conversation per user, every one having run a
 * full turn (a bash tool call in its workspace, then a reply) and then left idle.
 *
 * `virtual`, and `process` with `process_mode = "pooled"` (the same pools, bash
 * in a per-command bwrap sandbox): 100 and 1000 sessions on one pool process,
 * where an idle session holds no process of its own. `process`: up to 100
 * sandboxes (fewer if the machine runs low on memory; then the figure per
 * sandbox is what scales). Memory is PSS from /proc (pages shared between
 * processes are split between them), so summing it does not double count.
 *
 * `npm run bench -- sandbox-memory`; LOBU_BENCH_PROCESS_SANDBOXES=<n> to change
 * the process count, LOBU_BENCH_DRIVERS=virtual (or pooled) to measure one tier only,
 * LOBU_BENCH_SESSIONS=100,1000,20000 for the points of the pooled tiers (default 100,1000;
 * the marginal figure is taken from the first point to the last: between two close points
 * it is mostly when V8 last collected the pool's garbage, over the whole range it is not).
 *
 * Idle means idle for longer than the pool keeps any session's pi state
 * (LOBU_SESSION_HOLD_MAX_MS, 60 s, swept every 5 s) and then the model runtimes
 * given back at the release (10 s, swept every 5 s): the virtual points are
 * taken after IDLE_MS without a turn.
 */
import type { RecordedRequest } from "@lobu/testkit";
import { type BenchResult, type BenchRow, round, writeResult } from "./lib.ts";
import {
  inParallel,
  MiB,
  memAvailable,
  memoryOf,
  sleep,
  startBenchGateway,
} from "./sandbox-kit.ts";

const REFERENCE_MB = 50;
const WARM = 10;
const IDLE_MS = 80_000;
const DRIVERS = process.env.LOBU_BENCH_DRIVERS?.split(",") ?? ["virtual", "pooled", "process"];
const SIZES = (process.env.LOBU_BENCH_SESSIONS ?? "100,1000").split(",").map(Number);

/** One bash call touching the workspace, then a reply: every session is fully loaded once. */
const touch = (req: RecordedRequest) =>
  req.toolResults.length > 0
    ? { text: "done" }
    : {
        toolCalls: [
          {
            name: "bash",
            input: { command: `echo "${req.lastUserText}" >> log.txt; wc -l log.txt` },
          },
        ],
      };

const users = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `user-${from + i}`);

/** The tiers whose sessions live in pool processes: `virtual`, and `process` in `pooled` mode. */
const POOLED_TIERS = {
  virtual: { driver: "virtual", toml: "", name: "sandbox-memory-virtual" },
  pooled: {
    driver: "process",
    toml: `process_mode = "pooled"\n`,
    name: "sandbox-memory-pooled",
  },
} as const;

type Points = Record<
  number,
  { pss: number; rss: number; gw: number; gwRss: number; all: number; ms: number }
>;

/** Per session from the first point taken to the last. */
export function marginalRows(tier: string, points: Points): BenchRow[] {
  const rows: BenchRow[] = [];
  const taken = Object.keys(points)
    .map(Number)
    .sort((x, y) => x - y);
  if (taken.length < 2) return rows;
  const [a, z] = [taken[0]!, taken.at(-1)!];
  const span = `${a} → ${z}`;
  const marginal = (points[z]!.pss - points[a]!.pss) / (z - a);
  const gwMarginal = (points[z]!.gw - points[a]!.gw) / (z - a);
  rows.push(
    {
      metric: `${tier}: marginal memory per idle session (${span})`,
      value: round(marginal / 1024, 1),
      unit: "KB",
    },
    {
      metric: `${tier}: gateway marginal memory per sandbox (${span}, PSS)`,
      value: round(gwMarginal / 1024, 1),
      unit: "KB",
    },
    {
      metric: `${tier}: all-in marginal memory per idle session (${span}, gateway + pool PSS)`,
      value: round((points[z]!.all - points[a]!.all) / (z - a) / 1024, 1),
      unit: "KB",
      note: "target ≤ 250 KB",
    },
    {
      metric: `${tier}: idle sessions per GB of RAM (marginal)`,
      value: Math.floor((1024 * MiB) / marginal),
      unit: "sessions",
      note: `${REFERENCE_MB} MB per instance would be ${Math.floor(1024 / REFERENCE_MB)}`,
    },
    {
      metric: `${tier}: ${z - a} new sessions, create + first turn`,
      // Each point's time is the creation since the point before it.
      value: round(taken.slice(1).reduce((ms, n) => ms + points[n]!.ms, 0) / (z - a), 1),
      unit: "ms/session",
      note: "32 conversations at a time, wall clock",
    },
  );
  return rows;
}

async function virtualMemory(tier: keyof typeof POOLED_TIERS = "virtual"): Promise<BenchResult> {
  const { driver, toml, name } = POOLED_TIERS[tier];
  const b = await startBenchGateway(
    driver,
    `${toml}pool_size = 1\nidle_timeout = "2h"\nmax_concurrent = 32\n`,
    touch,
  );
  try {
    await inParallel(users(0, WARM), 8, (u) => b.chat(u, "hello"));
    await sleep(3000);
    const poolPid = (await b.sandboxes())[0]!.pid!;
    const gwPid = b.gw.child.pid!;
    const base = await memoryOf([poolPid]);
    // The gateway's tree holds its pool processes: the gateway alone is the tree minus the pool.
    const allBase = await memoryOf([gwPid]);
    const rows: BenchRow[] = [
      {
        metric: "pool process with 10 sessions (PSS)",
        value: round(base.pss / MiB, 1),
        unit: "MB",
        note: "node + pi + just-bash + shell threads, bwrap included",
      },
    ];
    const points: Points = {};
    let held = WARM;
    for (const n of SIZES) {
      const t0 = performance.now();
      await inParallel(users(held, n), 32, (u) => b.chat(u, "hello"));
      const ms = performance.now() - t0;
      held = n;
      await sleep(IDLE_MS);
      const list = await b.sandboxes();
      const running = list.filter((s) => s.state === "running").length;
      if (running !== n) throw new Error(`expected ${n} sandboxes loaded, found ${running}`);
      const m = await memoryOf([poolPid]);
      const all = await memoryOf([gwPid]);
      points[n] = {
        pss: m.pss,
        rss: m.rss,
        gw: all.pss - m.pss,
        gwRss: all.rss - m.rss,
        all: all.pss,
        ms,
      };
      // A long run (LOBU_BENCH_SESSIONS up to 20,000) keeps each point as it is taken.
      console.error(`${tier}: ${JSON.stringify({ n, ...points[n] })}`);
      rows.push(
        {
          metric: `${tier}: ${n} idle sessions, memory per session (PSS)`,
          value: round((m.pss - base.pss) / (n - WARM) / 1024, 1),
          unit: "KB",
          note: `pool PSS ${round(m.pss / MiB)} MB in total; reference ${REFERENCE_MB} MB per virtual-bash instance`,
        },
        {
          metric: `${tier}: ${n} idle sessions, all-in pool PSS per session`,
          value: round(m.pss / n / 1024, 1),
          unit: "KB",
          note: "the pool process's whole PSS divided by the sessions it holds",
        },
        {
          metric: `${tier}: ${n} idle sessions, pool RSS`,
          value: round(m.rss / MiB, 1),
          unit: "MB",
        },
        {
          metric: `${tier}: ${n} sessions, gateway memory per sandbox`,
          value: round((all.pss - m.pss - (allBase.pss - base.pss)) / (n - WARM) / 1024, 1),
          unit: "KB",
          note: `gateway process alone (PSS ${round((all.pss - m.pss) / MiB)} MB; its tree minus the pool)`,
        },
        {
          metric: `${tier}: ${n} sessions, all-in memory per session (gateway + pool PSS)`,
          value: round((all.pss - allBase.pss) / (n - WARM) / 1024, 1),
          unit: "KB",
          note: `from ${WARM} sessions; all-in PSS ${round(all.pss / MiB)} MB`,
        },
      );
      if (n !== SIZES.at(-1))
        writeResult({
          name,
          rows: [...rows, ...marginalRows(tier, points)],
          meta: { points, warm: WARM, partial: `stopped at ${n} of ${SIZES.join(", ")}` },
        });
    }
    return { name, rows: [...rows, ...marginalRows(tier, points)], meta: { points, warm: WARM } };
  } finally {
    await b.close();
  }
}

async function processMemory(): Promise<BenchResult> {
  const target = Number(process.env.LOBU_BENCH_PROCESS_SANDBOXES ?? 100);
  const b = await startBenchGateway(
    "process",
    `idle_timeout = "2h"\nmax_concurrent = 8\nmemory_mb = 512\n`,
    touch,
  );
  const checkpoints: Array<{ n: number; pss: number; rss: number; cgroup: number }> = [];
  let stoppedEarly: string | undefined;
  try {
    let held = 0;
    while (held < target) {
      if (memAvailable() < 3 * 1024 * MiB) {
        stoppedEarly = `stopped at ${held}: less than 3 GB of memory left`;
        break;
      }
      const next = Math.min(target, held + 10);
      await inParallel(users(held, next), 8, (u) => b.chat(u, "hello"));
      held = next;
      if (held % 50 === 0 || held === target) {
        await sleep(5000);
        const list = (await b.sandboxes()).filter((s) => s.state === "running");
        const m = await memoryOf(list.map((s) => s.pid!));
        const cgroup = list.reduce((n, s) => n + (s.usage?.memoryBytes ?? 0), 0);
        checkpoints.push({ n: list.length, pss: m.pss, rss: m.rss, cgroup });
      }
    }
    const last = checkpoints.at(-1)!;
    const rows: BenchRow[] = [
      {
        metric: `process: ${last.n} idle sandboxes, memory per sandbox (PSS)`,
        value: round(last.pss / last.n / MiB, 1),
        unit: "MB",
        note: "bwrap + node worker with pi loaded, after one turn",
      },
      {
        metric: `process: ${last.n} idle sandboxes, RSS per sandbox`,
        value: round(last.rss / last.n / MiB, 1),
        unit: "MB",
        note: "shared pages counted in every process",
      },
      {
        metric: `process: ${last.n} idle sandboxes, cgroup memory per sandbox`,
        value: round(last.cgroup / last.n / MiB, 1),
        unit: "MB",
        note: "what `lobu sandboxes list` shows (includes page cache charged to it)",
      },
      {
        metric: `process: ${last.n} idle sandboxes in total (PSS)`,
        value: round(last.pss / 1024 / MiB, 2),
        unit: "GB",
      },
    ];
    if (checkpoints.length >= 2) {
      const [a, z] = [checkpoints.at(-2)!, last];
      rows.push({
        metric: `process: marginal memory per sandbox (${a.n} → ${z.n}, PSS)`,
        value: round((z.pss - a.pss) / (z.n - a.n) / MiB, 1),
        unit: "MB",
      });
    }
    rows.push({
      metric: "process: idle sandboxes per GB of RAM",
      value: round((1024 * MiB) / (last.pss / last.n), 1),
      unit: "sandboxes",
    });
    return {
      name: "sandbox-memory-process",
      rows,
      meta: { target, checkpoints, stoppedEarly },
    };
  } finally {
    await b.close();
  }
}

export default async function bench(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  if (DRIVERS.includes("virtual")) results.push(await virtualMemory());
  if (DRIVERS.includes("pooled")) results.push(await virtualMemory("pooled"));
  if (DRIVERS.includes("process")) results.push(await processMemory());
  return results;
}
