/**
 * The virtual pool's own cost per turn, in this process: a pool-mode SessionHost
 * with virtual workspaces, the real pi runtime and the mock LLM, no gateway. What
 * limits end-to-end throughput once the gateway idles is this (see
 * docs/performance.md); run it under `--cpu-prof` to see where a turn's time goes:
 * `LOBU_BENCH_PROFILE=/tmp/pool.cpuprofile npm run bench -- --quick pool-turns`
 * profiles the measured turns only (not the warm-up); with
 * `LOBU_BENCH_PROFILE_PHASE=rebuilt`, the turns whose pi state was let go first
 * (an idle session's, after `LOBU_SESSION_RELEASE_MS`), rebuilt from disk.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TurnContext } from "@lobu/core";
import { startMockLlm } from "@lobu/testkit";
import { SessionHost } from "../packages/worker/src/host.ts";
import { virtualWorkspace } from "../packages/worker/src/virtual-workspace.ts";
import { type BenchResult, median, percentile, round, scaled } from "./lib.ts";
import { inParallel } from "./sandbox-kit.ts";

const KEY = "sk-ant-bench-key-0123456789abcdef";
const SESSIONS = scaled(400, 100);
const TURNS_PER_SESSION = 3;
/** Turns in flight at once (the gateway's max_concurrent). */
const CONCURRENCY = 32;

interface Phase {
  times: number[];
  seconds: number;
  /** CPU time of this process (user + system) over the phase. */
  cpuMs: number;
  failed: number;
}

/** TURNS_PER_SESSION rounds over every session; `before` runs before each round. */
async function measured(
  phase: "loaded" | "rebuilt",
  sessions: string[],
  turn: (sandboxId: string) => Promise<string>,
  before?: () => void,
): Promise<Phase> {
  const profiling = (process.env.LOBU_BENCH_PROFILE_PHASE ?? "loaded") === phase;
  const profiler = process.env.LOBU_BENCH_PROFILE && profiling ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post("Profiler.enable");
    await profiler.post("Profiler.start");
  }
  const times: number[] = [];
  let failed = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let m = 0; m < TURNS_PER_SESSION; m++) {
    before?.();
    await inParallel(sessions, CONCURRENCY, async (s) => {
      const t = performance.now();
      if ((await turn(s)) !== "done") failed++;
      times.push(performance.now() - t);
    });
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (profiler) {
    const { profile } = await profiler.post("Profiler.stop");
    writeFileSync(process.env.LOBU_BENCH_PROFILE!, JSON.stringify(profile));
    profiler.disconnect();
  }
  return { times, seconds, cpuMs: (cpu.user + cpu.system) / 1000, failed };
}

export default async function run(): Promise<BenchResult> {
  const llm = await startMockLlm({ apiKey: KEY });
  const root = mkdtempSync(join(tmpdir(), "lobu-bench-pool-"));
  const waiting = new Map<string, (status: string) => void>();
  const host = new SessionHost({
    mode: "pool",
    volumeOf: (id) => join(root, id),
    workspaceFor: (_id, volumeDir) => virtualWorkspace({ volumeDir }),
    gatewayUrl: llm.url,
    baseEnv: {},
    send: (msg) => {
      if (msg.t === "turn_end") waiting.get(msg.turnId)?.(msg.status);
    },
  });
  const context: TurnContext = {
    agentId: "default",
    model: {
      provider: "anthropic",
      api: "anthropic-messages",
      id: "claude-bench",
      endpoint: "/",
      apiKey: KEY,
      contextWindow: 200_000,
      maxTokens: 8192,
    },
    systemPrompt: "You are a benchmark.",
    tools: ["bash", "read", "write", "edit", "grep", "find", "ls"],
    toolPolicy: {},
    skills: [],
    env: {},
    requestTimeoutSec: 900,
  };
  let n = 0;
  const turn = (sandboxId: string) =>
    new Promise<string>((resolve) => {
      const turnId = `turn-${n++}`;
      waiting.set(turnId, resolve);
      host.handle({
        t: "turn",
        sandboxId,
        turnId,
        messageId: `m-${turnId}`,
        text: `hello ${turnId}`,
        context,
      });
    });
  const sessions = Array.from({ length: SESSIONS }, (_, i) => `pool-bench-${i}`);
  try {
    const cold: number[] = [];
    await inParallel(sessions, CONCURRENCY, async (s) => {
      const t = performance.now();
      await turn(s);
      cold.push(performance.now() - t);
    });
    const loaded = await measured("loaded", sessions, turn);
    // Every session lets go of its pi state before each round, as an idle one does.
    const rebuilt = await measured("rebuilt", sessions, turn, () => host.releaseIdle(0));
    const turns = SESSIONS * TURNS_PER_SESSION;
    return {
      name: "pool-turns",
      rows: [
        {
          metric: "pool: turns per second (sessions loaded)",
          value: round(turns / loaded.seconds),
          unit: "turns/s",
          note: `${SESSIONS} sessions × ${TURNS_PER_SESSION}, ${CONCURRENCY} at a time, one process`,
        },
        {
          metric: "pool: turn p50 (session loaded)",
          value: round(median(loaded.times)),
          unit: "ms",
        },
        {
          metric: "pool: turn p99 (session loaded)",
          value: round(percentile(loaded.times, 99)),
          unit: "ms",
        },
        {
          metric: "pool: turns per second (pi state rebuilt)",
          value: round(turns / rebuilt.seconds),
          unit: "turns/s",
          note: "each session's pi state let go before each turn, as after the idle release",
        },
        {
          metric: "pool: CPU per turn, loaded",
          value: round(loaded.cpuMs / turns, 2),
          unit: "ms",
        },
        {
          metric: "pool: CPU per turn, pi state rebuilt",
          value: round(rebuilt.cpuMs / turns, 2),
          unit: "ms",
          note: "this process: pi, the workspaces and the mock LLM",
        },
        { metric: "pool: first turn p50 (session built)", value: round(median(cold)), unit: "ms" },
        { metric: "pool: failed turns", value: loaded.failed + rebuilt.failed, unit: "turns" },
      ],
      meta: { sessions: SESSIONS, turnsPerSession: TURNS_PER_SESSION, concurrency: CONCURRENCY },
    };
  } finally {
    host.shutdown();
    await llm.close();
    rmSync(root, { recursive: true, force: true });
  }
}
