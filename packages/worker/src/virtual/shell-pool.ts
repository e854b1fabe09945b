import { availableParallelism, setPriority } from "node:os";
import { Worker } from "node:worker_threads";
import type { SecureFetch } from "just-bash";
import type { UsageCounter, UsageLedger } from "./quota-fs.ts";
import type { ShellResult } from "./shell.ts";
import type {
  FromThread,
  JobResult,
  SearchJob,
  SearchOutcome,
  ShellJob,
  ToThread,
} from "./shell-protocol.ts";

export interface ShellPoolOptions {
  /** Threads kept for commands and searches (default: min(4, CPUs)). */
  threads?: number;
  /**
   * Hard cap on threads, including the extra ones started so that a session with nothing
   * running never waits behind other sessions' long jobs (default: twice `threads`, at
   * most 8 and at least `threads + 1`).
   */
  maxThreads?: number;
  /** Heap limit per thread in MB: a job that blows it kills only its own thread (default 512). */
  maxThreadHeapMb?: number;
  /**
   * How long a job may take to stop after its deadline or abort before its thread is
   * terminated (a thread runs one job at a time, so this fails nothing else). Default 2 s.
   */
  killGraceMs?: number;
  /**
   * A job running longer than this gets a lower CPU priority (nice 10) while another
   * session has work in the pool. Default 1 s.
   */
  demoteAfterMs?: number;
  /** Threads beyond `threads` stop after being idle this long (default 10 s). */
  spareIdleMs?: number;
}

/** What a job needs from its workspace on the main thread. */
export interface ShellHost {
  /**
   * The session the job belongs to (its volume): the unit of fairness. Sessions are
   * served round-robin, those with fewer jobs running first.
   */
  session: string;
  usage: UsageLedger;
  fetch: SecureFetch;
}

type Outcome =
  | { t: "done"; result: JobResult }
  | { t: "searched"; result: SearchOutcome }
  | { t: "lost"; reason: string; outOfMemory: boolean };

interface Job {
  id: number;
  host: ShellHost;
  message: Extract<ToThread, { t: "run" | "search" }>;
  timeoutMs: number;
  settle: (outcome: Outcome, stopReason?: "timeout" | "abort") => void;
  /** Aborts the job's in-flight network requests. */
  network: AbortController;
  /** Lock holders waiting for the thread to hand the counter back. */
  unlocks: Map<number, (state: { bytes: number; entries: number; stale: boolean }) => void>;
  thread?: ShellThread;
  killTimer?: NodeJS.Timeout;
  demoteTimer?: NodeJS.Timeout;
  stopReason?: "timeout" | "abort";
  /** Has run for `demoteAfterMs`: demoted as soon as another session needs the CPU. */
  aged?: boolean;
  settled: boolean;
}

const THREAD_URL = new URL("./shell-thread.ts", import.meta.url);

/** One worker thread, running at most one job at a time. */
class ShellThread {
  readonly worker: Worker;
  job: Job | undefined;
  /** Kernel thread id, for lowering its priority (null until known, or off Linux). */
  tid: number | null = null;
  /** Its priority was lowered: it is retired after its job (niceness only goes up). */
  demoted = false;
  idleTimer?: NodeJS.Timeout;
  #gone = false;
  readonly #onMessage: (thread: ShellThread, message: FromThread) => void;
  readonly #onExit: (thread: ShellThread, reason: string, outOfMemory: boolean) => void;

  constructor(
    heapMb: number,
    onMessage: (thread: ShellThread, message: FromThread) => void,
    onExit: (thread: ShellThread, reason: string, outOfMemory: boolean) => void,
  ) {
    this.#onMessage = onMessage;
    this.#onExit = onExit;
    this.worker = new Worker(THREAD_URL, {
      // Nothing of the host's environment is needed in there.
      env: {},
      resourceLimits: { maxOldGenerationSizeMb: heapMb },
    });
    this.worker.unref();
    this.worker.on("message", (message: FromThread) => {
      if (message.t === "ready") this.tid = message.tid;
      else this.#onMessage(this, message);
    });
    this.worker.on("error", (error: Error & { code?: string }) =>
      this.#exit(
        `the shell thread crashed (${error.message})`,
        error.code === "ERR_WORKER_OUT_OF_MEMORY",
      ),
    );
    this.worker.on("exit", () => this.#exit("the shell thread stopped", false));
  }

  get gone(): boolean {
    return this.#gone;
  }

  #exit(reason: string, outOfMemory: boolean): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#onExit(this, reason, outOfMemory);
  }

  post(message: ToThread, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  stop(): Promise<number> {
    this.#gone = true;
    clearTimeout(this.idleTimer);
    return this.worker.terminate();
  }
}

/**
 * Runs bash commands, finds and greps on a few worker threads shared by every workspace in
 * the process. just-bash interprets scripts on the JavaScript thread that calls it, and a
 * loop that never awaits would otherwise freeze every session multiplexed in the pool
 * process; searches run there too so that no agent input costs the main thread more than
 * a message.
 *
 * Fairness between sessions:
 * - a thread runs one job at a time, so a job stopped at its deadline (or killed with its
 *   thread) never takes another session's job with it;
 * - waiting jobs are served round-robin by session, sessions with fewer jobs running first;
 * - a session with nothing running that would have to wait gets a thread of its own
 *   (up to `maxThreads`), and the kernel shares the CPUs between the threads;
 * - a job that has run for `demoteAfterMs` gets a lower CPU priority as soon as another
 *   session has work, so short commands of other sessions get most of the CPU while it
 *   runs (its thread is retired after it: niceness cannot be raised back).
 */
export class ShellPool {
  readonly #options: Required<ShellPoolOptions>;
  #threads: ShellThread[] = [];
  /** Waiting jobs per session, and sessions in round-robin order. */
  readonly #queues = new Map<string, Job[]>();
  #order: string[] = [];
  readonly #running = new Map<string, number>();
  #nextJob = 0;
  #closed = false;

  constructor(options: ShellPoolOptions = {}) {
    const threads = Math.max(1, options.threads ?? Math.min(4, availableParallelism()));
    this.#options = {
      threads,
      maxThreads: Math.max(threads + 1, options.maxThreads ?? Math.min(8, threads * 2)),
      maxThreadHeapMb: options.maxThreadHeapMb ?? 512,
      killGraceMs: options.killGraceMs ?? 2_000,
      demoteAfterMs: options.demoteAfterMs ?? 1_000,
      spareIdleMs: options.spareIdleMs ?? 10_000,
    };
  }

  /** The cap on threads (see ShellPoolOptions.maxThreads). */
  get maxThreads(): number {
    return this.#options.maxThreads;
  }

  /** Threads started, jobs running on them and jobs waiting. */
  stats(): { threads: number; running: number; queued: number } {
    let queued = 0;
    for (const q of this.#queues.values()) queued += q.length;
    return {
      threads: this.#threads.length,
      running: this.#threads.filter((t) => t.job).length,
      queued,
    };
  }

  /** Jobs running now per session (for the pool's call journal and tests). */
  runningBySession(): Map<string, number> {
    return new Map(this.#running);
  }

  /** Run one bash command line. */
  run(spec: ShellJob, host: ShellHost, signal?: AbortSignal): Promise<ShellResult> {
    if (this.#closed) return Promise.reject(new Error("The shell pool was closed."));
    return new Promise((resolve) => {
      this.#submit({ t: "run", job: 0, spec }, spec.timeoutMs, host, signal, (outcome, stop) => {
        if (outcome.t === "done") {
          const r = outcome.result;
          resolve({
            stdout: Buffer.from(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength),
            stderr: Buffer.from(r.stderr.buffer, r.stderr.byteOffset, r.stderr.byteLength),
            exitCode: r.exitCode,
            timedOut: r.timedOut,
            aborted: r.aborted,
          });
          return;
        }
        const note =
          outcome.t !== "lost" || stop !== undefined
            ? ""
            : outcome.outOfMemory
              ? `bash: this command ran out of memory (the shell's limit is ${this.#options.maxThreadHeapMb} MB) and was stopped; work on smaller pieces\n`
              : `bash: ${outcome.reason} while running this command; run it again\n`;
        resolve({
          stdout: Buffer.alloc(0),
          stderr: Buffer.from(note),
          exitCode: stop ? 124 : 1,
          timedOut: stop === "timeout",
          aborted: stop === "abort",
        });
      });
    });
  }

  /** Run one find or grep; rejects with a message for the model when it cannot finish. */
  search(spec: SearchJob, host: ShellHost, signal?: AbortSignal): Promise<SearchOutcome> {
    const name = spec.kind === "glob" ? "find" : "grep";
    if (this.#closed) return Promise.reject(new Error("The shell pool was closed."));
    return new Promise((resolve, reject) => {
      this.#submit({ t: "search", job: 0, spec }, spec.timeoutMs, host, signal, (outcome, stop) => {
        if (outcome.t === "searched") {
          if (outcome.result.kind !== "error") return resolve(outcome.result);
          const message = outcome.result.message;
          if (message !== "timeout") return reject(new Error(message));
        }
        if (stop === "abort" || signal?.aborted) return reject(new Error("Operation aborted"));
        if (stop === "timeout" || (outcome.t === "searched" && outcome.result.kind === "error"))
          return reject(
            new Error(
              `${name} was stopped after ${spec.timeoutMs / 1000} s. Search a smaller directory or use a more specific pattern.`,
            ),
          );
        const reason =
          outcome.t === "lost" && outcome.outOfMemory
            ? `ran out of memory (the limit is ${this.#options.maxThreadHeapMb} MB)`
            : `failed (${outcome.t === "lost" ? outcome.reason : "no result"})`;
        reject(new Error(`${name} ${reason}. Search a smaller directory or narrow the pattern.`));
      });
    });
  }

  #submit(
    message: Job["message"],
    timeoutMs: number,
    host: ShellHost,
    signal: AbortSignal | undefined,
    settle: (outcome: Outcome, stopReason?: "timeout" | "abort") => void,
  ): void {
    if (this.#closed) {
      settle({ t: "lost", reason: "the shell pool was closed", outOfMemory: false });
      return;
    }
    const id = this.#nextJob++;
    const job: Job = {
      id,
      host,
      message: { ...message, job: id },
      timeoutMs,
      network: new AbortController(),
      unlocks: new Map(),
      settled: false,
      settle: (outcome, stopReason) => {
        if (job.settled) return;
        job.settled = true;
        signal?.removeEventListener("abort", onAbort);
        settle(outcome, stopReason);
      },
    };
    const onAbort = () => {
      job.stopReason ??= "abort";
      if (job.thread) {
        job.thread.post({ t: "abort", job: id });
        this.#armKill(job, this.#options.killGraceMs);
        return;
      }
      // Still waiting: it never started.
      const queue = this.#queues.get(host.session);
      const at = queue?.indexOf(job) ?? -1;
      if (at >= 0) queue!.splice(at, 1);
      job.settle({ t: "lost", reason: "aborted", outOfMemory: false }, "abort");
    };
    if (signal?.aborted) {
      job.settle({ t: "lost", reason: "aborted", outOfMemory: false }, "abort");
      return;
    }
    signal?.addEventListener("abort", onAbort, { once: true });
    let queue = this.#queues.get(host.session);
    if (!queue) {
      queue = [];
      this.#queues.set(host.session, queue);
      this.#order.push(host.session);
    }
    queue.push(job);
    this.#pump();
  }

  /** The next session to serve: fewest jobs running, then round-robin. */
  #nextSession(): string | undefined {
    let best: string | undefined;
    let bestRunning = Number.POSITIVE_INFINITY;
    for (const session of this.#order) {
      const running = this.#running.get(session) ?? 0;
      if (running < bestRunning) {
        best = session;
        bestRunning = running;
      }
    }
    return best;
  }

  /** A thread for a job of `session`, started if the rules allow, or undefined: it waits. */
  #threadFor(session: string): ShellThread | undefined {
    const idle = this.#threads.find((t) => !t.job && !t.demoted);
    if (idle) return idle;
    const count = this.#threads.length;
    const starved = (this.#running.get(session) ?? 0) === 0;
    if (count < this.#options.threads || (starved && count < this.#options.maxThreads))
      return this.#startThread();
    return undefined;
  }

  #startThread(): ShellThread {
    const thread = new ShellThread(
      this.#options.maxThreadHeapMb,
      (t, message) => this.#onMessage(t, message),
      (t, reason, outOfMemory) => this.#onThreadExit(t, reason, outOfMemory),
    );
    this.#threads.push(thread);
    return thread;
  }

  #pump(): void {
    while (!this.#closed) {
      const session = this.#nextSession();
      if (session === undefined) return;
      const thread = this.#threadFor(session);
      if (!thread) return;
      const queue = this.#queues.get(session)!;
      const job = queue.shift()!;
      // Served: to the back of the round.
      this.#order = this.#order.filter((s) => s !== session);
      if (queue.length > 0) this.#order.push(session);
      else this.#queues.delete(session);
      this.#start(thread, job);
    }
  }

  #start(thread: ShellThread, job: Job): void {
    clearTimeout(thread.idleTimer);
    thread.job = job;
    job.thread = thread;
    const session = job.host.session;
    this.#running.set(session, (this.#running.get(session) ?? 0) + 1);
    thread.worker.ref(); // an unfinished job keeps the process alive, an idle thread does not
    // The thread stops the job itself at its deadline; this only catches a thread stuck
    // inside one long builtin or match.
    this.#armKill(job, job.timeoutMs + this.#options.killGraceMs, "timeout");
    // Long jobs lose CPU priority only when another session competes for the CPU: a
    // session alone keeps its full share.
    job.demoteTimer = setTimeout(() => {
      job.aged = true;
      if (this.#othersActive(session)) this.#demote(thread);
    }, this.#options.demoteAfterMs);
    job.demoteTimer.unref();
    for (const other of this.#threads)
      if (other.job?.aged && other.job.host.session !== session) this.#demote(other);
    thread.post(job.message);
  }

  /** Whether a session other than `session` has jobs running or waiting. */
  #othersActive(session: string): boolean {
    for (const s of this.#running.keys()) if (s !== session) return true;
    for (const s of this.#queues.keys()) if (s !== session) return true;
    return false;
  }

  /** Lower the priority of a thread's long job (nice 10); the thread retires after it. */
  #demote(thread: ShellThread): void {
    if (thread.demoted || thread.tid === null || !thread.job) return;
    try {
      setPriority(thread.tid, 10);
      thread.demoted = true;
    } catch {
      // not allowed here: scheduling alone keeps it fair
    }
  }

  #armKill(job: Job, afterMs: number, reason?: "timeout"): void {
    clearTimeout(job.killTimer);
    job.killTimer = setTimeout(() => {
      if (reason) job.stopReason ??= reason;
      void job.thread?.stop();
      if (job.thread) this.#onThreadExit(job.thread, "the shell thread was stopped", false);
    }, afterMs);
    job.killTimer.unref();
  }

  /** The job left its thread (finished, or the thread is gone). */
  #release(job: Job): void {
    clearTimeout(job.killTimer);
    clearTimeout(job.demoteTimer);
    job.network.abort();
    for (const release of job.unlocks.values()) release({ bytes: 0, entries: 0, stale: true });
    const session = job.host.session;
    const left = (this.#running.get(session) ?? 1) - 1;
    if (left > 0) this.#running.set(session, left);
    else this.#running.delete(session);
    const thread = job.thread;
    if (thread?.job === job) thread.job = undefined;
  }

  #finish(thread: ShellThread, job: Job, outcome: Outcome): void {
    this.#release(job);
    job.settle(outcome, job.stopReason);
    if (thread.demoted) this.#retire(thread);
    else if (!thread.gone) this.#idle(thread);
    this.#pump();
  }

  #idle(thread: ShellThread): void {
    thread.worker.unref();
    if (this.#threads.length <= this.#options.threads) return;
    thread.idleTimer = setTimeout(() => {
      if (!thread.job && this.#threads.length > this.#options.threads) this.#retire(thread);
    }, this.#options.spareIdleMs);
    thread.idleTimer.unref();
  }

  #retire(thread: ShellThread): void {
    this.#threads = this.#threads.filter((t) => t !== thread);
    void thread.stop();
  }

  #onThreadExit(thread: ShellThread, reason: string, outOfMemory: boolean): void {
    this.#threads = this.#threads.filter((t) => t !== thread);
    const job = thread.job;
    if (job) {
      this.#release(job);
      job.settle({ t: "lost", reason, outOfMemory }, job.stopReason);
    }
    this.#pump();
  }

  #onMessage(thread: ShellThread, message: FromThread): void {
    const job = thread.job;
    if (!job || !("job" in message) || message.job !== job.id) return;
    switch (message.t) {
      case "done":
      case "searched":
        this.#finish(thread, job, message);
        break;
      case "fetch": {
        const { req, request } = message;
        job.host
          .fetch(request.url, { ...request, signal: job.network.signal })
          .then((response) => {
            if (thread.job !== job) return;
            const body = new Uint8Array(response.body);
            thread.post({ t: "fetched", job: job.id, req, response: { ...response, body } }, [
              body.buffer as ArrayBuffer,
            ]);
          })
          .catch((error: unknown) => {
            if (thread.job !== job) return;
            const text = error instanceof Error ? error.message : String(error);
            thread.post({ t: "fetched", job: job.id, req, error: text });
          });
        break;
      }
      case "lock": {
        const { req } = message;
        job.host.usage
          .serialize(async (counter: UsageCounter) => {
            if (thread.job !== job) return; // finished (or killed) while queued
            const handBack = new Promise<{ bytes: number; entries: number; stale: boolean }>(
              (resolve) => job.unlocks.set(req, resolve),
            );
            const { bytes, entries } = counter;
            thread.post({ t: "locked", job: job.id, req, bytes, entries });
            const state = await handBack;
            job.unlocks.delete(req);
            counter.bytes = state.bytes;
            counter.entries = state.entries;
            if (state.stale) counter.invalidate();
          })
          .catch((error: unknown) => {
            if (thread.job !== job) return;
            const text = error instanceof Error ? error.message : String(error);
            thread.post({ t: "locked", job: job.id, req, bytes: 0, entries: 0, error: text });
          });
        break;
      }
      case "unlock":
        job.unlocks.get(message.req)?.(message);
        break;
    }
  }

  /** Stop all threads; running and waiting jobs fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const threads = this.#threads;
    this.#threads = [];
    for (const queue of this.#queues.values())
      for (const job of queue)
        job.settle({ t: "lost", reason: "the shell pool was closed", outOfMemory: false });
    this.#queues.clear();
    this.#order = [];
    await Promise.all(
      threads.map(async (t) => {
        const job = t.job;
        await t.stop();
        if (job) {
          this.#release(job);
          job.settle({ t: "lost", reason: "the shell thread stopped", outOfMemory: false });
        }
      }),
    );
  }
}

let shared: ShellPool | undefined;

/** The process-wide pool used by workspaces that are not given one. */
export function sharedShellPool(): ShellPool {
  shared ??= new ShellPool();
  return shared;
}
