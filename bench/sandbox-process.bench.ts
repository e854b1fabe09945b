/**
 * `process` sandbox driver: start→ready latency and idle memory, with the attacker
 * fixture as the worker (the real worker's figures come with its own benchmarks).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { createProcessDriver } from "../packages/gateway/src/sandbox/index.ts";
import { treeUsage } from "../packages/gateway/src/sandbox/proc.ts";
import { FIXTURE, makeSpec, TestEgress } from "../packages/gateway/test/sandbox/helpers.ts";
import { type BenchResult, median, percentile, round, sample } from "./lib.ts";

const STARTS = 30;
const IDLE = 10;

export default async function bench(): Promise<BenchResult> {
  const dir = mkdtempSync("/tmp/lobu-bench-sbx-");
  const egress = new TestEgress(dir);
  const driver = createProcessDriver({
    stateDir: join(dir, "state"),
    launcher: { entry: FIXTURE },
    logger: createLogger("bench", { level: "warn" }),
    uidBase: 400_000,
  });
  const spec = (id: string) => makeSpec(dir, id, { memoryMb: 512, pids: 128, diskMb: 256 });
  try {
    const quota = await driver.quotaMode();
    // First start of a volume (uid allocation, disk image creation) vs restarts.
    const first = await sample(5, async () => {
      const s = spec(`first-${Math.random().toString(36).slice(2)}`);
      await driver.start(s, egress);
      await driver.stop(s.id, { graceMs: 2000 });
    });
    const stops: number[] = [];
    const starts = await sample(STARTS, async () => {
      const s = await driver.start(spec("warm"), egress);
      const t0 = performance.now();
      await driver.stop(s.id, { graceMs: 2000 });
      stops.push(performance.now() - t0);
    });
    // sample() timed start+stop; take the stop part back out.
    const startOnly = starts.map((t, i) => t - stops[i]!);

    const idle = await Promise.all(
      Array.from({ length: IDLE }, (_, i) => driver.start(spec(`idle-${i}`), egress)),
    );
    await new Promise((r) => setTimeout(r, 3000));
    const cgroupMem = await Promise.all(idle.map(async (s) => (await s.usage()).memoryBytes ?? 0));
    const rss = await Promise.all(
      idle.map(async (s) => (await treeUsage(s.connection.pid!)).memoryBytes),
    );
    const MiB = 1024 * 1024;
    return {
      name: "sandbox-process",
      rows: [
        { metric: "start→ready (restart) median", value: round(median(startOnly)), unit: "ms" },
        {
          metric: "start→ready (restart) p99",
          value: round(percentile(startOnly, 99)),
          unit: "ms",
        },
        {
          metric: "start→ready+stop (new volume) median",
          value: round(median(first)),
          unit: "ms",
          note: quota === "loop" ? "includes mkfs of the disk image" : undefined,
        },
        { metric: "stop (graceful) median", value: round(median(stops)), unit: "ms" },
        {
          metric: "idle fixture worker memory (cgroup) median",
          value: round(median(cgroupMem) / MiB),
          unit: "MiB",
          note: "charged to the sandbox's memory cgroup",
        },
        {
          metric: "idle fixture sandbox RSS (bwrap + node) median",
          value: round(median(rss) / MiB),
          unit: "MiB",
          note: "shared pages counted per process",
        },
      ],
      meta: { starts: STARTS, idle: IDLE, quota, root: process.getuid?.() === 0 },
    };
  } finally {
    await driver.close();
    await egress.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
