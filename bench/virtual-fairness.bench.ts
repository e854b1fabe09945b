/**
 * Fairness of one `virtual` pool process between sessions (issue 9, security 8): how much
 * a victim's simple call is slowed down by neighbours that attack the pool, measured
 * against the same call alone in the same run.
 *
 *   shell:  two busy sessions keep two CPU-bound commands each running on the shell
 *           threads; the victim runs one command that takes ~1 s alone.
 *   glob:   a neighbour's `find` with a backtracking extglob over a long file name; the
 *           victim lists its workspace with `ls`.
 *   grep:   a neighbour's `grep` with a huge context/limit over a 2000-line file; the
 *           victim lists its workspace with `ls`.
 *
 * Everything runs in this process with the real workspaces, tools and shell threads, as
 * in a pool process. `npm run bench -- virtual-fairness`.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import {
  createVirtualWorkspace,
  ShellPool,
  type VirtualWorkspace,
} from "../packages/worker/src/virtual/index.ts";
import { type BenchResult, type BenchRow, median, round } from "./lib.ts";

const VICTIM_COMMAND = "for i in $(seq 1 60000); do x=$((i*2)); done; echo $x";
const BUSY_COMMAND = "for i in $(seq 1 100000); do x=$((i*3)); done; echo $x";
const RUNS = 5;
/** Give up on a victim call after this long (the "before" numbers can be unbounded). */
const GIVE_UP_MS = 120_000;

async function tool(ws: VirtualWorkspace, name: string, params: Record<string, unknown>) {
  const definition = ws.tools().find((t) => t.name === name)!;
  return definition
    .execute(`bench-${name}`, params, undefined, () => {}, undefined as never)
    .then(
      () => "ok",
      (error: Error) => `error: ${error.message.slice(0, 120)}`,
    );
}

/**
 * How long after `delayMs` from now the victim's call completes: scheduled before the
 * attack starts, so a main thread frozen by the attack counts against the victim.
 */
function victimAfter(delayMs: number, fn: () => Promise<unknown>): Promise<number> {
  const due = performance.now() + delayMs;
  return new Promise((resolve) => {
    setTimeout(() => {
      void fn().then(() => resolve(performance.now() - due));
    }, delayMs);
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    fn(),
    new Promise((resolve) => {
      timer = setTimeout(resolve, GIVE_UP_MS);
    }),
  ]);
  clearTimeout(timer);
  return performance.now() - t0;
}

export default async function virtualFairness(): Promise<BenchResult> {
  const root = await mkdtemp(join(tmpdir(), "lobu-bench-fairness-"));
  const shellPool = new ShellPool();
  const open: VirtualWorkspace[] = [];
  const workspace = (name: string) => {
    const ws = createVirtualWorkspace({ volumeDir: join(root, name), shellPool });
    open.push(ws);
    return ws;
  };
  const rows: BenchRow[] = [];
  try {
    const victim = workspace("victim");
    await victim.exec("echo hello > notes.txt");

    // 1. Shell threads: two busy sessions against one simple command.
    const alone: number[] = [];
    for (let i = 0; i < RUNS; i++) alone.push(await timed(() => victim.exec(VICTIM_COMMAND)));
    let attacking = true;
    const busy = [workspace("busy-a"), workspace("busy-b")];
    const keepBusy = (ws: VirtualWorkspace) =>
      (async () => {
        while (attacking) await ws.exec(BUSY_COMMAND);
      })();
    const attackers = busy.flatMap((ws) => [keepBusy(ws), keepBusy(ws)]);
    // Busy for a while before the victim comes back, as in the report.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const contended: number[] = [];
    for (let i = 0; i < RUNS; i++) contended.push(await timed(() => victim.exec(VICTIM_COMMAND)));
    attacking = false;
    await Promise.all(attackers);
    // Alone again: the machine's own load drifts, so the baseline is taken on both sides.
    for (let i = 0; i < RUNS; i++) alone.push(await timed(() => victim.exec(VICTIM_COMMAND)));
    rows.push(
      { metric: "shell: victim command alone, median", value: median(alone), unit: "ms" },
      {
        metric: "shell: same command next to 2 busy sessions, median",
        value: median(contended),
        unit: "ms",
        note: `${round(median(contended) / median(alone), 1)}x alone; each busy session keeps 2 commands running`,
      },
    );

    // 2. A backtracking extglob in find, and 3. a huge grep, against the victim's ls.
    const lsAlone: number[] = [];
    for (let i = 0; i < RUNS; i++) lsAlone.push(await timed(() => tool(victim, "ls", {})));
    rows.push({ metric: "tools: victim ls alone, median", value: median(lsAlone), unit: "ms" });

    const globber = workspace("globber");
    await mkdir(join(root, "globber"), { recursive: true });
    await writeFile(join(root, "globber", "a".repeat(30)), "x");
    const lsDuringGlob = victimAfter(20, () => tool(victim, "ls", {}));
    const findStart = performance.now();
    const find = tool(globber, "find", { pattern: "*(a|aa)*(a|aa)*(a|aa)c" });
    const lsGlob = await lsDuringGlob;
    await find;
    const findMs = performance.now() - findStart;
    rows.push({
      metric: "glob: victim ls while a neighbour's find backtracks",
      value: lsGlob,
      unit: "ms",
      note: `neighbour's find took ${round(findMs / 1000, 1)} s (${await find})`,
    });

    const grepper = workspace("grepper");
    await mkdir(join(root, "grepper"), { recursive: true });
    await writeFile(join(root, "grepper", "big.txt"), "match line\n".repeat(2000));
    const lsDuringGrep = victimAfter(20, () => tool(victim, "ls", {}));
    const grepStart = performance.now();
    const grep = tool(grepper, "grep", { pattern: "match", context: 1e9, limit: 1e9 });
    const lsGrep = await lsDuringGrep;
    await grep;
    const grepMs = performance.now() - grepStart;
    rows.push({
      metric: "grep: victim ls while a neighbour greps with context=limit=1e9",
      value: lsGrep,
      unit: "ms",
      note: `neighbour's grep took ${round(grepMs / 1000, 1)} s (${await grep})`,
    });

    return {
      name: "virtual-fairness",
      rows,
      meta: {
        cpus: availableParallelism(),
        shellThreads: shellPool.stats().threads,
        victimCommand: VICTIM_COMMAND,
        busyCommand: BUSY_COMMAND,
        samples: { alone, contended, lsAlone },
      },
    };
  } finally {
    await Promise.all(open.map((ws) => ws.dispose()));
    await shellPool.close();
    await rm(root, { recursive: true, force: true });
  }
}
