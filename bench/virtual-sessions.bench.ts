/**
 * Memory and wake latency of idle sessions on the `virtual` tier: N pi sessions, each over
 * its own virtual workspace, in ONE process. Every session runs one bash command through
 * a full pi turn (so the lazy parts are touched), then sits idle while we measure.
 *
 * The model is the testkit mock LLM in a child process, so its memory is not counted.
 * Run with `node --expose-gc bench/run.ts virtual` (it falls back to enabling gc itself).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import vm from "node:vm";
import type { AgentSession } from "@earendil-works/pi-coding-agent";
import {
  createVirtualWorkspace,
  ShellPool,
  type VirtualWorkspace,
} from "../packages/worker/src/virtual/index.ts";
import { virtualPi } from "../packages/worker/test/virtual/pi-kit.ts";
import { type BenchResult, type BenchRow, median, percentile, round } from "./lib.ts";

const SIZES = [100, 1000];
/** Idle sessions woken per latency sample set. */
const WAKES = 200;
/** The reference: one real virtual-bash instance per user. */
const REFERENCE_MB_PER_INSTANCE = 50;

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

function collector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}
const gc = collector();

interface Mem {
  rss: number;
  heap: number;
  external: number;
}

/** Live memory after full collections and a pause for V8 to give pages back. */
async function settledMemory(): Promise<Mem> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, external: m.external + m.arrayBuffers };
}

/** The mock LLM answers a prompt with a bash call running the prompt text, then "done". */
async function startModel(): Promise<{ url: string; child: ChildProcess }> {
  const script = `
    import { startMockLlm } from "@lobu/testkit";
    const llm = await startMockLlm({
      defaultReply: (req) => req.toolResults.length > 0
        ? { text: "done" }
        : { toolCalls: [{ name: "bash", input: { command: req.lastUserText } }] },
    });
    console.log(llm.url);
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`mock LLM exited with ${code}`)));
    createInterface({ input: child.stdout! }).once("line", resolve);
  });
  return { url, child };
}

interface Session {
  ws: VirtualWorkspace;
  session?: AgentSession;
}

export default async function virtualSessions(): Promise<BenchResult[]> {
  const root = await mkdtemp(join(tmpdir(), "lobu-bench-virtual-"));
  const model = await startModel();
  const shellPool = new ShellPool();
  try {
    const pi = await virtualPi(root, model.url);
    const agentDir = join(root, "agent");
    let serial = 0;

    const newWorkspace = () =>
      createVirtualWorkspace({ volumeDir: join(root, `v${serial++}`), shellPool });
    const newSession = (ws: VirtualWorkspace) => pi.session(ws, agentDir);
    const command = (i: number) => `echo "turn ${i}" >> log.txt && wc -l log.txt`;

    // Load every module and start the shell threads before the baseline.
    const before = await settledMemory();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        const ws = newWorkspace();
        const session = await newSession(ws);
        await session.prompt(command(0));
        session.dispose();
        await ws.dispose();
      }),
    );
    const loaded = await settledMemory();
    const fixed: BenchResult = {
      name: "virtual-sessions-fixed",
      rows: [
        {
          metric: "rss after loading pi + just-bash + shell threads",
          value: loaded.rss / 2 ** 20,
          unit: "MB",
          note: `${shellPool.stats().threads} shell threads; +${round((loaded.rss - before.rss) / 2 ** 20)} MB over the bare bench process`,
        },
      ],
    };

    // Main-thread responsiveness while a command spins on a shell thread.
    const spinner = newWorkspace();
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    await spinner.exec("while true; do :; done", { timeoutMs: 2_000 });
    lag.disable();
    await spinner.dispose();
    fixed.rows.push({
      metric: "main-thread event-loop delay p99 during a busy loop",
      value: lag.percentile(99) / 1e6,
      unit: "ms",
      note: "just-bash runs on shell threads; the pool process stays responsive",
    });

    const results: BenchResult[] = [fixed];
    for (const n of SIZES) {
      results.push(await measure(n));
    }
    return results;

    async function measure(n: number): Promise<BenchResult> {
      // Workspaces alone (what this layer costs), each woken once.
      let base = await settledMemory();
      let held: Session[] = [];
      for (let i = 0; i < n; i++) {
        const ws = newWorkspace();
        await ws.exec(command(i));
        held.push({ ws });
      }
      const wsOnly = await settledMemory();
      const wsHeap = (wsOnly.heap - base.heap) / n;
      const wsRss = (wsOnly.rss - base.rss) / n;
      await Promise.all(held.map((s) => s.ws.dispose()));
      held = [];

      // Workspaces + pi sessions, one full turn each.
      base = await settledMemory();
      const started = performance.now();
      for (let i = 0; i < n; i++) {
        const ws = newWorkspace();
        const session = await newSession(ws);
        await session.prompt(command(i));
        held.push({ ws, session });
      }
      const setupMs = performance.now() - started;
      const idle = await settledMemory();
      const heap = (idle.heap - base.heap) / n;
      const rss = (idle.rss - base.rss) / n;
      const external = (idle.external - base.external) / n;

      // Wake idle sessions: the command alone, then a whole pi turn (two model calls).
      const pick = (k: number) => held[(k * 7919) % held.length]!;
      const execMs: number[] = [];
      for (let k = 0; k < WAKES; k++) {
        const { ws } = pick(k);
        const t0 = performance.now();
        const r = await ws.exec(command(k));
        execMs.push(performance.now() - t0);
        if (r.exitCode !== 0) throw new Error(`wake command failed: ${r.stderr}`);
      }
      const turnMs: number[] = [];
      for (let k = 0; k < WAKES; k++) {
        const { session } = pick(k + WAKES);
        const t0 = performance.now();
        await session!.prompt(command(k));
        turnMs.push(performance.now() - t0);
      }

      for (const s of held) s.session?.dispose();
      await Promise.all(held.map((s) => s.ws.dispose()));
      held = [];

      const kb = (bytes: number) => bytes / 1024;
      const rows: BenchRow[] = [
        {
          metric: "rss per idle session",
          value: kb(rss),
          unit: "KB",
          note: `workspace + pi session after one turn; reference ${REFERENCE_MB_PER_INSTANCE} MB per virtual-bash instance`,
        },
        { metric: "heap per idle session", value: kb(heap), unit: "KB", note: "V8 heapUsed" },
        { metric: "external per idle session", value: kb(external), unit: "KB" },
        {
          metric: "heap per idle workspace (no pi session)",
          value: kb(wsHeap),
          unit: "KB",
          note: "this layer's own share",
        },
        { metric: "rss per idle workspace (no pi session)", value: kb(wsRss), unit: "KB" },
        { metric: "wake + bash command p50", value: median(execMs), unit: "ms" },
        { metric: "wake + bash command p99", value: percentile(execMs, 99), unit: "ms" },
        {
          metric: "wake + pi turn p50",
          value: median(turnMs),
          unit: "ms",
          note: "prompt -> bash tool call -> result -> reply, mock LLM over HTTP",
        },
        { metric: "wake + pi turn p99", value: percentile(turnMs, 99), unit: "ms" },
        {
          metric: "setup per session",
          value: setupMs / n,
          unit: "ms",
          note: "create + first turn",
        },
        { metric: "rss total with sessions idle", value: idle.rss / 2 ** 20, unit: "MB" },
      ];
      return {
        name: `virtual-sessions-${n}`,
        rows,
        meta: { sessions: n, wakes: WAKES, shellThreads: shellPool.stats().threads },
      };
    }
  } finally {
    model.child.kill();
    await shellPool.close();
    await rm(root, { recursive: true, force: true });
  }
}
