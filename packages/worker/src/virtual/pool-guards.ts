import { CallJournal, journalPath } from "./call-journal.ts";
import { ShellPool } from "./shell-pool.ts";
import { startStallWatchdog } from "./stall-watchdog.ts";
import type { ToolCallInfo } from "./workspace.ts";

/**
 * What keeps one pool process fair between its sandboxes and its crashes charged to the
 * right one, set up from the environment the gateway's virtual driver gives the pool:
 *
 * - `LOBU_POOL_INSTANCE`: names the call journal (call-journal.ts) for this process;
 * - `LOBU_POOL_MEMORY_MB`: the pool's memory limit, shared out between shell threads so
 *   that all of them together stay within their share of it;
 * - `LOBU_SHELL_THREADS`: threads kept for commands and searches;
 * - `LOBU_POOL_STALL_MS`: how long the main thread may freeze before the pool is ended
 *   (default 20 s).
 */
export interface PoolGuards {
  shellPool: ShellPool;
  /** The `onCall` hook for the workspace of `sandboxId`. */
  onCall(sandboxId: string): (call: ToolCallInfo) => () => void;
  close(): void;
}

/** Share of the pool's memory for all shell threads' heaps together. */
const THREAD_MEMORY_SHARE = 0.4;

const positive = (value: string | undefined): number | undefined => {
  const n = Number(value);
  return value !== undefined && Number.isFinite(n) && n > 0 ? n : undefined;
};

export function startPoolGuards(env: NodeJS.ProcessEnv, volumesRoot: string): PoolGuards {
  const poolId = env.LOBU_SANDBOX_ID ?? "pool";
  const instance = env.LOBU_POOL_INSTANCE;
  const journal = new CallJournal({
    file: instance ? journalPath(volumesRoot, poolId, instance) : undefined,
    instance: instance ?? "none",
  });
  const watchdog = startStallWatchdog({
    journalFile: journal.file,
    stallMs: positive(env.LOBU_POOL_STALL_MS) ?? 20_000,
  });
  const threads = positive(env.LOBU_SHELL_THREADS);
  const probe = new ShellPool({ threads });
  const maxThreads = probe.maxThreads;
  const memoryMb = positive(env.LOBU_POOL_MEMORY_MB);
  const shellPool = memoryMb
    ? new ShellPool({
        threads,
        maxThreadHeapMb: Math.max(
          64,
          Math.min(512, Math.floor((memoryMb * THREAD_MEMORY_SHARE) / maxThreads)),
        ),
      })
    : probe;
  return {
    shellPool,
    onCall: (sandboxId) => (call) => journal.begin(sandboxId, call),
    close() {
      void watchdog.stop();
      journal.close();
    },
  };
}
