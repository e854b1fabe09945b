import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { SecureFetch } from "just-bash";
import type { UsageCounter, UsageLedger } from "./quota-fs.ts";
import type { ShellResult } from "./shell.ts";
import type { FromThread, JobResult, ShellJob, ToThread } from "./shell-protocol.ts";

export interface ShellPoolOptions {
  /** Shell threads; commands are spread over them (default: min(4, CPUs)). */
  threads?: number;
  /** Heap limit per thread in MB: a command that blows it kills only its thread (default 512). */
  maxThreadHeapMb?: number;
  /**
   * How long a command may take to stop after its deadline or abort before its thread is
   * terminated (which also fails the other commands running on that thread). Default 2 s.
   */
  killGraceMs?: number;
}

/** What a command needs from its workspace on the main thread. */
export interface ShellHost {
  usage: UsageLedger;
  fetch: SecureFetch;
}

interface PendingJob {
  host: ShellHost;
  resolve: (result: ShellResult) => void;
  /** Aborts the job's in-flight network requests. */
  network: AbortController;
  /** Lock holders waiting for the thread to hand the counter back. */
  unlocks: Map<number, (state: { bytes: number; entries: number; stale: boolean }) => void>;
  killTimer?: NodeJS.Timeout;
  stopReason?: "timeout" | "abort";
}

const THREAD_URL = new URL("./shell-thread.ts", import.meta.url);

function toResult(r: JobResult): ShellResult {
  return {
    stdout: Buffer.from(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength),
    stderr: Buffer.from(r.stderr.buffer, r.stderr.byteOffset, r.stderr.byteLength),
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    aborted: r.aborted,
  };
}

class ShellThread {
  readonly worker: Worker;
  readonly jobs = new Map<number, PendingJob>();
  #onExit: (thread: ShellThread) => void;

  constructor(options: Required<ShellPoolOptions>, onExit: (thread: ShellThread) => void) {
    this.#onExit = onExit;
    this.worker = new Worker(THREAD_URL, {
      // Nothing of the host's environment is needed in there.
      env: {},
      resourceLimits: { maxOldGenerationSizeMb: options.maxThreadHeapMb },
    });
    this.worker.unref();
    this.worker.on("message", (message: FromThread) => this.#onMessage(message));
    this.worker.on("error", (error) => this.#fail(`the shell thread crashed (${error.message})`));
    this.worker.on("exit", () => this.#fail("the shell thread stopped"));
  }

  post(message: ToThread, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  add(id: number, job: PendingJob): void {
    this.jobs.set(id, job);
    this.worker.ref(); // an unfinished command keeps the process alive, an idle thread does not
  }

  #finish(id: number, result: ShellResult): void {
    const job = this.jobs.get(id);
    if (!job) return;
    this.jobs.delete(id);
    if (this.jobs.size === 0) this.worker.unref();
    clearTimeout(job.killTimer);
    job.network.abort();
    for (const release of job.unlocks.values()) release({ bytes: 0, entries: 0, stale: true });
    job.resolve(result);
  }

  #onMessage(message: FromThread): void {
    const job = this.jobs.get(message.job);
    if (!job) return;
    switch (message.t) {
      case "done":
        this.#finish(message.job, toResult(message.result));
        break;
      case "fetch": {
        const { req, request } = message;
        job.host
          .fetch(request.url, { ...request, signal: job.network.signal })
          .then((response) => {
            const body = new Uint8Array(response.body);
            this.post({ t: "fetched", job: message.job, req, response: { ...response, body } }, [
              body.buffer as ArrayBuffer,
            ]);
          })
          .catch((error: unknown) => {
            const text = error instanceof Error ? error.message : String(error);
            this.post({ t: "fetched", job: message.job, req, error: text });
          });
        break;
      }
      case "lock": {
        const { req } = message;
        job.host.usage
          .serialize(async (counter: UsageCounter) => {
            if (!this.jobs.has(message.job)) return; // finished (or killed) while queued
            const handBack = new Promise<{ bytes: number; entries: number; stale: boolean }>(
              (resolve) => job.unlocks.set(req, resolve),
            );
            const { bytes, entries } = counter;
            this.post({ t: "locked", job: message.job, req, bytes, entries });
            const state = await handBack;
            job.unlocks.delete(req);
            counter.bytes = state.bytes;
            counter.entries = state.entries;
            if (state.stale) counter.invalidate();
          })
          .catch((error: unknown) => {
            const text = error instanceof Error ? error.message : String(error);
            this.post({ t: "locked", job: message.job, req, bytes: 0, entries: 0, error: text });
          });
        break;
      }
      case "unlock":
        job.unlocks.get(message.req)?.(message);
        break;
    }
  }

  /** The thread is gone: fail what ran on it and give borrowed counters back as stale. */
  #fail(reason: string): void {
    for (const [id, job] of [...this.jobs]) {
      const note =
        job.stopReason === undefined
          ? `bash: ${reason} while running this command; run it again\n`
          : "";
      this.#finish(id, {
        stdout: Buffer.alloc(0),
        stderr: Buffer.from(note),
        exitCode: job.stopReason ? 124 : 1,
        timedOut: job.stopReason === "timeout",
        aborted: job.stopReason === "abort",
      });
    }
    this.#onExit(this);
  }
}

/**
 * Runs bash commands on a few worker threads shared by every workspace in the process.
 * just-bash interprets scripts on the JavaScript thread that calls it, and a loop that
 * never awaits would otherwise freeze every session multiplexed in the pool process.
 */
export class ShellPool {
  readonly #options: Required<ShellPoolOptions>;
  #threads: ShellThread[] = [];
  #nextJob = 0;
  #closed = false;

  constructor(options: ShellPoolOptions = {}) {
    this.#options = {
      threads: Math.max(1, options.threads ?? Math.min(4, availableParallelism())),
      maxThreadHeapMb: options.maxThreadHeapMb ?? 512,
      killGraceMs: options.killGraceMs ?? 2_000,
    };
  }

  /** Threads started so far and commands running on them. */
  stats(): { threads: number; running: number } {
    return {
      threads: this.#threads.length,
      running: this.#threads.reduce((n, t) => n + t.jobs.size, 0),
    };
  }

  #pick(): ShellThread {
    const idle = this.#threads.find((t) => t.jobs.size === 0);
    if (idle) return idle;
    if (this.#threads.length < this.#options.threads) {
      const thread = new ShellThread(this.#options, (gone) => {
        this.#threads = this.#threads.filter((t) => t !== gone);
      });
      this.#threads.push(thread);
      return thread;
    }
    return this.#threads.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
  }

  run(spec: ShellJob, host: ShellHost, signal?: AbortSignal): Promise<ShellResult> {
    if (this.#closed) return Promise.reject(new Error("The shell pool was closed."));
    const thread = this.#pick();
    const id = this.#nextJob++;
    const { promise, resolve } = Promise.withResolvers<ShellResult>();
    const job: PendingJob = {
      host,
      resolve,
      network: new AbortController(),
      unlocks: new Map(),
    };
    const arm = (reason: "timeout" | "abort", afterMs: number) => {
      clearTimeout(job.killTimer);
      job.killTimer = setTimeout(() => {
        job.stopReason ??= reason;
        void thread.worker.terminate();
      }, afterMs);
      job.killTimer.unref();
    };
    // The thread stops the command itself at its deadline; this only catches a thread
    // stuck inside one long builtin.
    arm("timeout", spec.timeoutMs + this.#options.killGraceMs);
    thread.add(id, job);
    thread.post({ t: "run", job: id, spec });
    // After "run": the thread ignores an abort for a job it does not know yet.
    const onAbort = () => {
      thread.post({ t: "abort", job: id });
      arm("abort", this.#options.killGraceMs);
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    return promise.finally(() => signal?.removeEventListener("abort", onAbort));
  }

  /** Stop all threads; running commands fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const threads = this.#threads;
    this.#threads = [];
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }
}

let shared: ShellPool | undefined;

/** The process-wide pool used by workspaces that are not given one. */
export function sharedShellPool(): ShellPool {
  shared ??= new ShellPool();
  return shared;
}
