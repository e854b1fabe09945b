/**
 * `npm run bench:report`: turns bench/results/*.json into the tables of
 * docs/performance.md (between its `bench:tables` markers) and the charts in
 * docs/images/perf-*.svg. Run it after `npm run bench`; it measures nothing.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { round } from "./lib.ts";

interface Row {
  metric: string;
  value: number;
  unit: string;
  note?: string;
}
interface Result {
  name: string;
  rows: Row[];
  meta?: Record<string, unknown>;
  machine?: { cpus: number; cpuModel?: string; memGb: number; node: string };
  at?: string;
}

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const resultsDir = join(here, "results");
const doc = join(root, "docs", "performance.md");
const images = join(root, "docs", "images");

const results = new Map<string, Result>(
  readdirSync(resultsDir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => {
      const r = JSON.parse(readFileSync(join(resultsDir, f), "utf8")) as Result;
      return [r.name, r];
    }),
);

function value(name: string, metric: string): number | undefined {
  return results.get(name)?.rows.find((r) => r.metric === metric)?.value;
}

/** The value of the first row of `name` whose metric matches `pattern`. */
function matching(name: string, pattern: RegExp): number | undefined {
  return results.get(name)?.rows.find((r) => pattern.test(r.metric))?.value;
}

function table(r: Result): string {
  const m = r.machine;
  const head = `### ${r.name}\n\n${r.at ? `Run ${r.at.slice(0, 10)}` : ""}${
    m ? ` on ${m.cpus} × ${m.cpuModel ?? "CPU"}, ${m.memGb} GB, Node ${m.node}` : ""
  }.\n`;
  const lines = [
    "| metric | value | unit | note |",
    "| --- | ---: | --- | --- |",
    ...r.rows.map(
      (row) =>
        `| ${row.metric} | ${round(row.value)} | ${row.unit} | ${(row.note ?? "").replaceAll("|", "\\|")} |`,
    ),
  ];
  return `${head}\n${lines.join("\n")}\n`;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** A horizontal bar chart: one bar per entry, the value printed at its end. */
function bars(title: string, unit: string, entries: [string, number][], log = false): string {
  const width = 760;
  const label = 330;
  const barH = 22;
  const top = 40;
  const height = top + entries.length * (barH + 8) + 20;
  const max = Math.max(...entries.map(([, v]) => v));
  const scale = (v: number) =>
    log
      ? (Math.log10(Math.max(v, 1)) / Math.log10(Math.max(max, 10))) * (width - label - 90)
      : (v / max) * (width - label - 90);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13" role="img">`,
    `<title>${esc(title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="24" font-size="15" font-weight="bold">${esc(title)}${log ? " (log scale)" : ""}</text>`,
  ];
  entries.forEach(([name, v], i) => {
    const y = top + i * (barH + 8);
    const w = Math.max(1, scale(v));
    out.push(
      `<text x="${label - 8}" y="${y + 15}" text-anchor="end">${esc(name)}</text>`,
      `<rect x="${label}" y="${y}" width="${round(w, 1)}" height="${barH}" fill="#4a78b5"/>`,
      `<text x="${round(label + w + 6, 1)}" y="${y + 15}">${round(v, v < 10 ? 2 : 0)} ${esc(unit)}</text>`,
    );
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function defined(entries: [string, number | undefined][]): [string, number][] {
  return entries.filter((e): e is [string, number] => e[1] !== undefined && Number.isFinite(e[1]));
}

const charts: Record<string, string> = {
  "perf-wake.svg": bars(
    "Wake latency: message accepted → model called (p50 / p99)",
    "ms",
    defined([
      ["process tier, cold p50", value("sandbox-latency", "process: cold wake p50")],
      ["process tier, cold p99", value("sandbox-latency", "process: cold wake p99")],
      ["virtual tier, cold p50", value("sandbox-latency", "virtual: cold wake p50")],
      ["virtual tier, cold p99", value("sandbox-latency", "virtual: cold wake p99")],
      ["process tier pooled, cold p50", value("sandbox-latency", "pooled: cold wake p50")],
      [
        "process tier pooled, cold + first command p50",
        value("sandbox-latency", "pooled: cold wake + first bash command p50"),
      ],
      ["virtual session, wake + pi turn p50", value("virtual-sessions-1000", "wake + pi turn p50")],
      ["virtual session, wake + pi turn p99", value("virtual-sessions-1000", "wake + pi turn p99")],
      ["warm (either tier) p50", value("sandbox-latency", "virtual: warm p50")],
    ]),
    true,
  ),
  "perf-memory.svg": bars(
    "Average memory per idle session (total ÷ sessions held)",
    "KB",
    defined([
      ...memoryPoints(),
      [
        "gateway live heap, marginal (after GC)",
        value("gateway-heap", "gateway live heap per idle sandbox"),
      ],
      [
        "process tier, held (PSS)",
        (matching(
          "sandbox-memory-process",
          /^process: \d+ idle sandboxes, memory per sandbox \(PSS\)$/,
        ) ?? Number.NaN) * 1024,
      ],
    ]),
    true,
  ),
  "perf-throughput.svg": bars(
    "End-to-end throughput against distinct users sending at once (virtual tier)",
    "msg/s",
    defined([
      [
        "8 users, 12 messages each (reference)",
        value("throughput", "virtual: messages per second"),
      ],
      ...sweepPoints(),
      ["process tier, 8 users", value("throughput", "process: messages per second")],
    ]),
  ),
  "perf-proxy.svg": bars(
    "Egress proxy: throughput through the proxy, % of direct (same run)",
    "%",
    defined([
      ["plain HTTP", value("proxy-throughput", "http: via proxy / direct")],
      ["HTTPS with placeholder swap", value("proxy-throughput", "https+swap: via proxy / direct")],
    ]),
  ),
};

/** Messages per second at each number of users the sweep ran. */
function sweepPoints(): [string, number][] {
  const points = (results.get("throughput-virtual-sweep")?.meta?.points ?? []) as {
    users: number;
    perSecond: number;
    p50: number;
    p99: number;
  }[];
  return points.map((p): [string, number] => [
    `${p.users} users (p50 ${round(p.p50)} ms, p99 ${round(p.p99)} ms)`,
    p.perSecond,
  ]);
}

/** Pool and gateway memory per session at each size the memory benchmark held. */
function memoryPoints(): [string, number | undefined][] {
  return (["virtual", "pooled"] as const).flatMap((tier) => {
    const points = (results.get(`sandbox-memory-${tier}`)?.meta?.points ?? {}) as Record<
      string,
      { pss: number; gw: number; all?: number }
    >;
    const label = tier === "virtual" ? "virtual" : "process tier pooled";
    const per = (bytes: number, n: string) => bytes / Number(n) / 1024;
    return Object.entries(points).flatMap(([n, p]): [string, number][] =>
      // Older results have no `all`: their `gw` was the gateway's whole tree (pools included).
      p.all === undefined
        ? [
            [`${label}, ${n} held: pool (PSS)`, per(p.pss, n)],
            [`${label}, ${n} held: gateway + pool (PSS)`, per(p.gw, n)],
          ]
        : [
            [`${label}, ${n} held: pool (PSS)`, per(p.pss, n)],
            [`${label}, ${n} held: gateway alone (PSS)`, per(p.gw, n)],
            [`${label}, ${n} held: all-in (PSS)`, per(p.all, n)],
          ],
    );
  });
}

for (const [file, svg] of Object.entries(charts)) writeFileSync(join(images, file), svg);

const START = "<!-- bench:tables:start -->";
const END = "<!-- bench:tables:end -->";
const text = readFileSync(doc, "utf8");
const from = text.indexOf(START);
const to = text.indexOf(END);
if (from < 0 || to < from) throw new Error(`${doc} has no ${START} … ${END} block`);
const tables = [...results.values()].map(table).join("\n");
writeFileSync(
  doc,
  `${text.slice(0, from + START.length)}\n\n<!-- generated by npm run bench:report from bench/results; do not edit -->\n\n${tables}\n${text.slice(to)}`,
);
console.log(`wrote ${doc} and ${Object.keys(charts).join(", ")} in docs/images`);
