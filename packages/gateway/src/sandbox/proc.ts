import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";

/** Host-side view of process trees, for drivers that have no cgroup to ask. */

export interface ProcEntry {
  pid: number;
  ppid: number;
  /** Resident set size in bytes. */
  rss: number;
}

const PAGE_SIZE = 4096;

/** One scan of /proc: every process we can see with its parent and RSS. */
export async function processTable(): Promise<Map<number, ProcEntry>> {
  const table = new Map<number, ProcEntry>();
  let names: string[];
  try {
    names = await readdir("/proc");
  } catch {
    return table;
  }
  await Promise.all(
    names
      .filter((n) => /^\d+$/.test(n))
      .map(async (n) => {
        try {
          const stat = await readFile(`/proc/${n}/stat`, "utf8");
          // The command name may contain spaces and parentheses: fields start after the last ')'.
          const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
          const ppid = Number(fields[1]);
          const rssPages = Number(fields[21]);
          table.set(Number(n), { pid: Number(n), ppid, rss: rssPages * PAGE_SIZE });
        } catch {
          // exited meanwhile
        }
      }),
  );
  return table;
}

/** `root` and all its descendants, in breadth-first order. */
export function descendants(table: Map<number, ProcEntry>, root: number): ProcEntry[] {
  const children = new Map<number, ProcEntry[]>();
  for (const entry of table.values()) {
    const list = children.get(entry.ppid);
    if (list) list.push(entry);
    else children.set(entry.ppid, [entry]);
  }
  const out: ProcEntry[] = [];
  const first = table.get(root);
  if (!first) return out;
  const queue = [first];
  while (queue.length > 0) {
    const entry = queue.shift()!;
    out.push(entry);
    for (const child of children.get(entry.pid) ?? []) queue.push(child);
  }
  return out;
}

/** Process count and total RSS of a tree. */
export async function treeUsage(root: number): Promise<{ pids: number; memoryBytes: number }> {
  const tree = descendants(await processTable(), root);
  return { pids: tree.length, memoryBytes: tree.reduce((sum, e) => sum + e.rss, 0) };
}

export function signalPids(pids: Iterable<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone or not ours
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * When `pid` started, in clock ticks since boot (/proc/<pid>/stat field 22).
 * A pid and its start time name one process: a pid alone may have been reused
 * by any other process since the one it named exited (pid_max is often 32768).
 */
export function startTicks(pid: number | "self"): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Signal `pid` only while it is still the process that started at `ticks`.
 * Returns whether it was signalled. Signalling a remembered pid blindly may hit
 * an unrelated process that got the number after the remembered one exited.
 */
export function signalSame(
  pid: number,
  ticks: number | undefined,
  signal: NodeJS.Signals,
): boolean {
  if (ticks === undefined || startTicks(pid) !== ticks) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
