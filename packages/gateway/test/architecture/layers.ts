import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

/**
 * The import rule of packages/gateway/src, checked by layers.test.ts (part of
 * `npm test`) and explained in docs/architecture.md.
 *
 * A folder imports its own modules and folders of LOWER layers only. Folders
 * of one layer do not import each other, except where WITHIN_LAYER says so.
 * Platform code is narrower still (PLATFORM_RULE). The files at the root of
 * src (gateway.ts, index.ts) count as the folder ".".
 */
export const LAYERS: readonly { layer: string; folders: readonly string[] }[] = [
  // Vocabulary and plumbing that knows nothing of the gateway's parts.
  { layer: "0 foundation", folders: ["domain", "util", "store", "telemetry", "http"] },
  // Services on top of storage, each on its own.
  { layer: "1 services", folders: ["secrets", "audit", "skills", "sandbox", "datadir", "nix"] },
  // What a turn needs from the outside world and from people's own settings.
  { layer: "2 egress & people", folders: ["proxy", "providers", "usage", "people"] },
  // Agents, and the MCP servers they reach through the gateway (clients, people's connections).
  { layer: "3 agents", folders: ["agents", "mcp"] },
  // Messages and who may do what (tokens, sessions, settings links).
  { layer: "4 conversations & access", folders: ["conversations", "access", "schedules"] },
  // Queue, dispatcher, turn runner, sandbox manager, egress wiring, answers.
  { layer: "5 runtime", folders: ["runtime"] },
  // What people and operators touch: no surface imports another.
  { layer: "6 surfaces", folders: ["platforms", "settings", "api", "admin"] },
  // Builds everything in order and hands each part what it uses.
  { layer: "7 wiring", folders: ["wiring"] },
  // startGateway (gateway.ts) and the package's public API (index.ts).
  { layer: "8 entry", folders: ["."] },
];

/** The imports allowed between folders of one layer: [from, to, why]. */
export const WITHIN_LAYER: readonly (readonly [string, string, string])[] = [
  ["http", "store", "cursor query parameters are event-log stream ids (store/shared.ts)"],
  [
    "datadir",
    "sandbox",
    "the data-dir lock identifies its holder by process start time (sandbox/proc.ts)",
  ],
  [
    "providers",
    "proxy",
    "the LLM relay swaps placeholders and drops hop-by-hop headers as the proxy does",
  ],
];

/**
 * Platform code reaches the gateway only through the AdapterContext it is
 * given: each platform folder imports the foundation it needs and
 * platforms/shared, nothing else; platforms/index.ts registers the folders.
 */
export const PLATFORM_RULE = {
  /** What platforms/<name>/ and platforms/shared/ may import besides themselves. */
  platform: ["domain", "util", "http", "platforms/shared"],
  shared: ["domain", "util", "http"],
} as const;

export interface Violation {
  file: string;
  imports: string;
  rule: string;
}

/** Relative specifiers of every import and export-from in `source`. */
export function importsOf(source: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^;]*?\bfrom\s*["'](\.[^"']*)["']/gm,
    /^\s*import\s*["'](\.[^"']*)["']/gm,
    /\bimport\(\s*["'](\.[^"']*)["']\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of source.matchAll(pattern)) specs.push(m[1]!);
  return specs;
}

/** The unit a module belongs to: its top folder ("." at the root), platforms split per platform. */
export function unitOf(path: string): string {
  const parts = path.split("/");
  if (parts.length === 1) return ".";
  if (parts[0] === "platforms" && parts.length > 2) return `platforms/${parts[1]}`;
  return parts[0]!;
}

const folderOf = (unit: string) => unit.split("/")[0]!;

function layerIndex(folder: string): number {
  return LAYERS.findIndex((l) => l.folders.includes(folder));
}

/** Why the import `from` → `to` (module paths relative to src) breaks the rule, or null. */
export function check(from: string, to: string): string | null {
  const a = unitOf(from);
  const b = unitOf(to);
  if (a === b) return null;
  if (a.startsWith("platforms/") || a === "platforms") {
    if (a === "platforms") return b.startsWith("platforms/") ? null : platformRule(a, b);
    const allowed: readonly string[] =
      a === "platforms/shared" ? PLATFORM_RULE.shared : PLATFORM_RULE.platform;
    if (!allowed.includes(b) && !allowed.includes(folderOf(b))) return platformRule(a, b);
  }
  const fa = folderOf(a);
  const fb = folderOf(b);
  if (fa === fb) return null;
  const la = layerIndex(fa);
  const lb = layerIndex(fb);
  if (la < 0) return `folder ${fa}/ is in no layer: add it to LAYERS`;
  if (lb < 0) return `folder ${fb}/ is in no layer: add it to LAYERS`;
  if (lb < la) return null;
  if (lb === la && WITHIN_LAYER.some(([f, t]) => f === fa && t === fb)) return null;
  return lb > la
    ? `${fa}/ (layer ${LAYERS[la]!.layer}) imports ${fb}/ from a higher layer (${LAYERS[lb]!.layer})`
    : `${fa}/ and ${fb}/ are both in layer ${LAYERS[la]!.layer}, and WITHIN_LAYER does not allow it`;
}

function platformRule(a: string, b: string): string {
  return `${a}/ may import only ${(a === "platforms/shared" ? PLATFORM_RULE.shared : PLATFORM_RULE.platform).join(", ")} (not ${b}/): it reaches the gateway through its AdapterContext`;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return /\.tsx?$/.test(name) ? [path] : [];
  });
}

/** Every import in `srcDir` that breaks the rule. */
export function violations(srcDir: string): Violation[] {
  const found: Violation[] = [];
  const rel = (p: string) => relative(srcDir, p).split(sep).join("/");
  for (const file of tsFiles(srcDir)) {
    for (const spec of importsOf(readFileSync(file, "utf8"))) {
      const target = resolve(dirname(file), spec);
      if (relative(srcDir, target).startsWith("..")) continue;
      const rule = check(rel(file), rel(target));
      if (rule) found.push({ file: rel(file), imports: rel(target), rule });
    }
  }
  return found;
}

/** The folder-level import graph of `srcDir` and its cycles (strongly connected folders). */
export function folderCycles(srcDir: string): string[][] {
  const edges = new Map<string, Set<string>>();
  const rel = (p: string) => relative(srcDir, p).split(sep).join("/");
  for (const file of tsFiles(srcDir)) {
    for (const spec of importsOf(readFileSync(file, "utf8"))) {
      const target = resolve(dirname(file), spec);
      if (relative(srcDir, target).startsWith("..")) continue;
      const a = folderOf(unitOf(rel(file)));
      const b = folderOf(unitOf(rel(target)));
      if (a === b) continue;
      if (!edges.has(a)) edges.set(a, new Set());
      edges.get(a)!.add(b);
    }
  }
  // Tarjan's strongly connected components.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/** `node packages/gateway/test/architecture/layers.ts`: print what breaks the rule. */
if (import.meta.main) {
  const src = resolve(import.meta.dirname, "../../src");
  const found = violations(src);
  for (const v of found) console.log(`${v.file} → ${v.imports}: ${v.rule}`);
  const cycles = folderCycles(src);
  for (const c of cycles) console.log(`folder cycle: ${c.join(" ↔ ")}`);
  console.log(`${found.length} imports break the layer rule; ${cycles.length} folder cycles`);
  process.exitCode = found.length || cycles.length ? 1 : 0;
}
