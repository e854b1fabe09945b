import { Worker } from "node:worker_threads";

/**
 * The last line of defence of a pool process: every tool call's work is bounded and runs
 * off the main thread where it could be long, but if the main thread still stops
 * answering (a bug, a pathological input nobody thought of), every sandbox of the pool is
 * frozen with it. A watchdog thread sees the main thread's heartbeat stop; after `stallMs`
 * it marks the call journal as stalled and ends the process, so the gateway restarts the
 * pool, charges the crash to the sandboxes whose main-thread calls were running, and
 * retries everyone else's turns.
 */
export interface StallWatchdogOptions {
  /** The call journal to mark before ending the process (see call-journal.ts). */
  journalFile?: string;
  /** How long the main thread may not beat before the process is ended. */
  stallMs: number;
  /** Heartbeat interval (default 250 ms). */
  beatMs?: number;
}

export interface StallWatchdog {
  stop(): Promise<void>;
}

export function startStallWatchdog(options: StallWatchdogOptions): StallWatchdog {
  const beat = new Int32Array(new SharedArrayBuffer(4));
  const beatMs = options.beatMs ?? 250;
  const heartbeat = setInterval(() => Atomics.add(beat, 0, 1), beatMs);
  heartbeat.unref();
  const worker = new Worker(new URL("./stall-watchdog-thread.ts", import.meta.url), {
    env: {},
    workerData: {
      beat,
      journalFile: options.journalFile,
      stallMs: options.stallMs,
      checkMs: Math.min(beatMs, options.stallMs / 4),
    },
    resourceLimits: { maxOldGenerationSizeMb: 16 },
  });
  worker.unref();
  return {
    async stop() {
      clearInterval(heartbeat);
      await worker.terminate();
    },
  };
}
