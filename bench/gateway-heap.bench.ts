/**
 * What the gateway itself keeps per idle virtual sandbox: a real `lobu run`, N
 * conversations that each ran one turn and went idle, a heap snapshot of the
 * gateway (which collects garbage first) at two sizes, and the difference per
 * added sandbox by constructor. Its RSS at the same points is reported too: the
 * gap between the two is heap headroom and garbage, not state.
 *
 * `npm run bench -- gateway-heap` (quick: 30 → 130 sandboxes; full: 100 → 1000;
 * LOBU_BENCH_SANDBOXES=1000,10000 for other points). LOBU_BENCH_HEAP_DIR=<dir> keeps
 * the snapshots there (to read their retainers in Chrome DevTools).
 */
import { copyFileSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type BenchResult, type BenchRow, round, scaled } from "./lib.ts";
import { inParallel, ownMemory, sleep, startBenchGateway } from "./sandbox-kit.ts";

const [FROM, TO] = (process.env.LOBU_BENCH_SANDBOXES?.split(",").map(Number) ?? [
  scaled(100, 30),
  scaled(1000, 130),
]) as [number, number];
const KEEP = process.env.LOBU_BENCH_HEAP_DIR;

interface HeapSummary {
  total: number;
  byKind: Map<string, { bytes: number; count: number }>;
}

/** Self size per node type and constructor name of a V8 heap snapshot. */
function summarize(file: string): HeapSummary {
  const snap = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [ti, ni, si] = ["type", "name", "self_size"].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const byKind = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + ti]!]!;
    const named = type === "object" || type === "closure" || type === "native";
    const kind = named ? `${type} ${snap.strings[snap.nodes[i + ni]!]}` : type;
    const size = snap.nodes[i + si]!;
    const e = byKind.get(kind) ?? { bytes: 0, count: 0 };
    e.bytes += size;
    e.count++;
    byKind.set(kind, e);
    total += size;
  }
  return { total, byKind };
}

/** Ask the gateway for a heap snapshot (SIGUSR2) and wait until it is written. */
async function snapshot(pid: number, dir: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, "SIGUSR2");
  for (;;) {
    await sleep(1000);
    const name = readdirSync(dir).find((f) => f.endsWith(".heapsnapshot") && !before.has(f));
    if (!name) continue;
    const file = join(dir, name);
    const size = statSync(file).size;
    await sleep(1500);
    if (size > 0 && statSync(file).size === size) return file;
  }
}

export default async function gatewayHeap(): Promise<BenchResult> {
  const b = await startBenchGateway(
    "virtual",
    `pool_size = 1\nidle_timeout = "2h"\nmax_concurrent = 32\n`,
    undefined,
    ["--heapsnapshot-signal=SIGUSR2"],
  );
  const users = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, i) => `heap-${from + i}`);
  const pid = b.gw.child.pid!;
  const measure = async () => {
    await sleep(2000);
    const file = await snapshot(pid, b.gw.dataDir);
    const heap = summarize(file);
    if (KEEP) copyFileSync(file, join(KEEP, `gateway-${Date.now()}.heapsnapshot`));
    rmSync(file);
    // The gateway process alone: its tree also holds the pool process.
    return { heap, rss: ownMemory(pid).rss };
  };
  try {
    await inParallel(users(0, FROM), 16, (u) => b.chat(u, "hello"));
    const small = await measure();
    await inParallel(users(FROM, TO), 16, (u) => b.chat(u, "hello"));
    const large = await measure();
    const added = TO - FROM;
    const perSandbox = (a: number, z: number) => (z - a) / added / 1024;
    const rows: BenchRow[] = [
      {
        metric: "gateway live heap per idle sandbox",
        value: round(perSandbox(small.heap.total, large.heap.total), 1),
        unit: "KB",
        note: `heap snapshots (after GC) at ${FROM} and ${TO} sandboxes`,
      },
      {
        metric: "gateway RSS per idle sandbox",
        value: round(perSandbox(small.rss, large.rss), 1),
        unit: "KB",
        note: "the gateway process alone, same points; the difference from the heap is headroom and garbage",
      },
    ];
    const top = [...large.heap.byKind]
      .map(([kind, e]) => {
        const was = small.heap.byKind.get(kind) ?? { bytes: 0, count: 0 };
        return { kind, bytes: (e.bytes - was.bytes) / added, count: (e.count - was.count) / added };
      })
      .sort((x, y) => y.bytes - x.bytes)
      .slice(0, 12);
    for (const t of top) {
      rows.push({
        metric: `  ${t.kind}`,
        value: round(t.bytes),
        unit: "B/sandbox",
        note: `${round(t.count, 1)} per sandbox`,
      });
    }
    return {
      name: "gateway-heap",
      rows,
      meta: {
        from: FROM,
        to: TO,
        rssBytes: [small.rss, large.rss],
        heapBytes: [small.heap.total, large.heap.total],
      },
    };
  } finally {
    await b.close();
  }
}
