import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, hostname, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** One measured figure. Ratios and medians are what we quote; machines here are noisy. */
export interface BenchRow {
  metric: string;
  value: number;
  unit: string;
  note?: string;
}

export interface BenchResult {
  name: string;
  rows: BenchRow[];
  /** Free-form details (raw samples summary, parameters). */
  meta?: Record<string, unknown>;
}

/** `npm run bench -- --quick`: fewer samples, results under bench/results/quick/. */
export const quick =
  process.env.LOBU_BENCH_QUICK === "1" || process.argv.slice(2).includes("--quick");

/** `full` samples normally, `short` in quick mode. */
export const scaled = (full: number, short: number): number => (quick ? short : full);

export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export const median = (samples: number[]): number => percentile(samples, 50);

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function printTable(result: BenchResult): void {
  const rows = result.rows.map((r) => [r.metric, String(round(r.value)), r.unit, r.note ?? ""]);
  const head = ["metric", "value", "unit", "note"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  console.log(`\n## ${result.name}`);
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(line(r));
}

const resultsDir = join(
  dirname(fileURLToPath(import.meta.url)),
  quick ? join("results", "quick") : "results",
);

/** Write `bench/results/<name>.json` with the machine it ran on. */
export function writeResult(result: BenchResult): string {
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${result.name}.json`);
  const machine = {
    host: hostname(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGb: round(totalmem() / 2 ** 30, 1),
    node: process.version,
  };
  writeFileSync(
    file,
    `${JSON.stringify({ ...result, machine, quick, at: new Date().toISOString() }, null, 2)}\n`,
  );
  return file;
}

/** Run `fn` until `count` samples are collected; returns durations in ms. */
export async function sample(count: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}
