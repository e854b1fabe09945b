import { lstatSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { GatewayProcess } from "./gateway-process.ts";
import { descendants } from "./procfs.ts";

/** Every regular file under `dir`, recursively; symlinks are skipped (an agent may plant loops). */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

/**
 * Where on the host any of `values` shows up: files under `dir` (disk images
 * aside) and the environment and command line of every process the gateway
 * started (its workers and their children). Empty when nowhere.
 */
export function leaksOnHost(gw: GatewayProcess, values: string[], dir: string): string[] {
  const found: string[] = [];
  for (const file of filesUnder(dir)) {
    if (file.endsWith(".img")) continue;
    const bytes = readFileSync(file);
    for (const v of values) if (bytes.includes(v)) found.push(`${file} holds ${v.slice(0, 8)}…`);
  }
  for (const p of descendants(gw.child.pid!)) {
    for (const [what, text] of [
      ["environment", p.environ],
      ["command line", p.cmdline],
    ] as const) {
      for (const v of values) {
        if (text.includes(v)) found.push(`the ${what} of pid ${p.pid} holds ${v.slice(0, 8)}…`);
      }
    }
  }
  return found;
}
