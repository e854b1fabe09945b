import { readdirSync, readFileSync } from "node:fs";

export interface ProcInfo {
  pid: number;
  ppid: number;
  cmdline: string;
  environ: string;
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** All live processes descending from `root` (Linux /proc), with their command line and environment. */
export function descendants(root: number): ProcInfo[] {
  const all = new Map<number, ProcInfo>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = read(`/proc/${entry}/stat`);
    // The command name may contain ") ": fields start after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!Number.isInteger(ppid)) continue;
    all.set(Number(entry), {
      pid: Number(entry),
      ppid,
      cmdline: read(`/proc/${entry}/cmdline`).replaceAll("\0", " "),
      environ: read(`/proc/${entry}/environ`).replaceAll("\0", "\n"),
    });
  }
  const out: ProcInfo[] = [];
  const queue = [root];
  while (queue.length) {
    const parent = queue.shift()!;
    for (const p of all.values()) {
      if (p.ppid === parent) {
        out.push(p);
        queue.push(p.pid);
      }
    }
  }
  return out;
}
