/**
 * `npm run bench [-- [--quick] name...]`: runs every benchmark in this folder (or the
 * named ones), prints a table per benchmark and writes bench/results/<name>.json.
 * `--quick` (or LOBU_BENCH_QUICK=1) takes fewer samples, for development: its figures
 * are noisier and are written to bench/results/quick/ so they never replace the
 * full runs that docs/performance.md quotes.
 */
import { readdirSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type BenchResult, printTable, writeResult } from "./lib.ts";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
// Worker threads the benchmarks start inherit it through the environment.
if (args.includes("--quick")) process.env.LOBU_BENCH_QUICK = "1";
const wanted = args.filter((a) => a !== "--quick");
const available = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .sort();
// A name selects every benchmark file starting with it; one that selects nothing is a typo.
const unknown = wanted.filter((w) => !available.some((f) => f.startsWith(w)));
if (unknown.length > 0) {
  console.error(
    `no benchmark matches ${unknown.join(", ")}; available: ${available
      .map((f) => f.replace(/\.bench\.ts$/, ""))
      .join(", ")}`,
  );
  process.exit(2);
}
const files = available.filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)));

for (const file of files) {
  console.error(`running ${file} ...`);
  const mod = (await import(pathToFileURL(`${here}/${file}`).href)) as {
    default: () => Promise<BenchResult | BenchResult[]>;
  };
  const results = await mod.default();
  for (const result of Array.isArray(results) ? results : [results]) {
    printTable(result);
    console.log(`→ ${writeResult(result)}`);
  }
}
