import { Worker } from "node:worker_threads";

/** How often the thread looks for frames to copy. */
const CHECKPOINT_EVERY_MS = 500;

export interface Checkpointer {
  /**
   * Stops the thread: resolves once it closed its connection and ended, so no file of
   * the database (its log, its shared memory) is opened or removed after that.
   */
  close(): Promise<void>;
}

/**
 * Checkpoints of a WAL database on a thread of their own (checkpoint-thread.ts).
 * `onFailed` is told when the thread ends with an error: the caller then lets its
 * own connection checkpoint again, as SQLite does by default.
 */
export function startCheckpointer(
  path: string,
  opts: {
    synchronous: "FULL" | "NORMAL";
    busyTimeoutMs: number;
    onFailed: (err: unknown) => void;
  },
): Checkpointer {
  const worker = new Worker(new URL("./checkpoint-thread.ts", import.meta.url), {
    env: {},
    workerData: {
      path,
      everyMs: CHECKPOINT_EVERY_MS,
      synchronous: opts.synchronous,
      busyTimeoutMs: opts.busyTimeoutMs,
    },
    resourceLimits: { maxOldGenerationSizeMb: 16 },
  });
  // Never what keeps the gateway running.
  worker.unref();
  worker.on("error", opts.onFailed);
  const ended = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  return {
    close: () => {
      // A thread still starting handles the message once its connection is open. Held
      // until it ends, so whoever awaits this is not cut short by an empty event loop.
      worker.ref();
      worker.postMessage("close");
      return ended;
    },
  };
}
