import { readFileSync } from "node:fs";
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
   * A session whose recent thread time exceeds this (and is at least twice that of another
   * session with work in the pool) runs its jobs at a lower CPU priority (nice 10).
   * Default 1 s.
   */
  heavyAfterMs?: number;
  /** Half-life of a session's recorded thread time (default 10 s). */
  usageHalfLifeMs?: number;
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
  /** Time up to here is in the session's usage (wall clock ms; thread CPU ms when known). */
  chargedAt?: number;
  chargedCpu?: number;
  stopReason?: "timeout" | "abort";
  settled: boolean;
}

const THREAD_URL = new URL("./shell-thread.ts", import.meta.url);

/** Kernel clock ticks per second for /proc times (100 on every Linux Node runs on). */
const CLOCK_TICKS = 100;

/** CPU time (user + system, ms) the kernel thread `tid` of this process has used. */
function threadCpuMs(tid: number | null): number | undefined {
  if (tid === null) return undefined;
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "latin1");
    // Fields after the command name (which may hold spaces) closed by ") ".
    const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
    return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS : undefined;
  } catch {
    return undefined;
  }
}

/** One worker thread, running at most one job at a time. */
class ShellThread {
  readonly worker: Worker;
  job: Job | undefined;
  /** Kernel thread id, for lowering its priority (null until known, or off Linux). */
  tid: number | null = null;
  /**
   * Its priority was lowered (nice 10). Niceness cannot be raised back without
   * privileges, so from then on it runs only jobs of heavy sessions.
   */
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
 * - a session runs more than one job at a time only while fewer than `threads` jobs run in
 *   all, and a session with nothing running that would have to wait gets a thread of its
 *   own (up to `maxThreads`): the threads beyond `threads` are kept for such sessions, and
 *   the kernel shares the CPUs between the threads;
 * - each session's thread CPU time is recorded (decaying with `usageHalfLifeMs`); a session
 *   that has used much more than another one with work in the pool is "heavy", and its
 *   jobs run at a lower CPU priority, so the kernel gives most of the CPU to the light
 *   session's command while both run. Alone in the pool, no session is heavy.
 */
export class ShellPool {
  readonly #options: Required<ShellPoolOptions>;
  #threads: ShellThread[] = [];
  /** Waiting jobs per session, and sessions in round-robin order. */
  readonly #queues = new Map<string, Job[]>();
  #order: string[] = [];
  readonly #running = new Map<string, number>();
  /** Recent thread time per session (ms, decaying), and when it was last decayed. */
  readonly #usage = new Map<string, { ms: number; at: number }>();
  #rebalancer?: NodeJS.Timeout;
  #nextJob = 0;
  #closed = false;

  constructor(options: ShellPoolOptions = {}) {
    const threads = Math.max(1, options.threads ?? Math.min(4, availableParallelism()));
    this.#options = {
      threads,
      maxThreads: Math.max(threads + 1, options.maxThreads ?? Math.min(8, threads * 2)),
      maxThreadHeapMb: options.maxThreadHeapMb ?? 512,
      killGraceMs: options.killGraceMs ?? 2_000,
      heavyAfterMs: options.heavyAfterMs ?? 1_000,
      usageHalfLifeMs: options.usageHalfLifeMs ?? 10_000,
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
      if (queue?.length === 0) {
        this.#queues.delete(host.session);
        this.#order = this.#order.filter((s) => s !== host.session);
      }
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
    const starved = (this.#running.get(session) ?? 0) === 0;
    // A second job of a session runs only while fewer than `threads` jobs run in all: the
    // threads beyond are kept for sessions with nothing running.
    let runningJobs = 0;
    for (const n of this.#running.values()) runningJobs += n;
    if (!starved && runningJobs >= this.#options.threads) return undefined;
    const heavy = this.#isHeavy(session);
    // Demoted threads only ever run heavy sessions' jobs; anyone may use a normal one.
    const idle =
      (heavy ? this.#threads.find((t) => !t.job && t.demoted) : undefined) ??
      this.#threads.find((t) => !t.job && !t.demoted);
    if (idle) return idle;
    const count = this.#threads.length;
    if (count < this.#options.threads || (starved && count < this.#options.maxThreads))
      return this.#startThread();
    // At the cap with an idle demoted thread a light session cannot use: replace it.
    const spare = this.#threads.find((t) => !t.job && t.demoted);
    if (spare && (count <= this.#options.threads || starved)) {
      this.#retire(spare);
      return this.#startThread();
    }
    return undefined;
  }

  /** A session's recent thread time, running jobs included up to now. */
  #usageOf(session: string, now = performance.now()): number {
    const entry = this.#usage.get(session);
    if (!entry) return 0;
    const decayed = entry.ms * 0.5 ** ((now - entry.at) / this.#options.usageHalfLifeMs);
    entry.ms = decayed;
    entry.at = now;
    return decayed;
  }

  /**
   * Add what running jobs used since they were last charged: their thread's CPU time where
   * the kernel tells it (a job waiting for the network or in `sleep` costs nothing), else
   * the time they ran.
   */
  #chargeRunning(now = performance.now()): void {
    for (const thread of this.#threads) {
      const job = thread.job;
      if (job?.chargedAt === undefined) continue;
      const cpu = threadCpuMs(thread.tid);
      const used =
        cpu !== undefined && job.chargedCpu !== undefined
          ? cpu - job.chargedCpu
          : now - job.chargedAt;
      const ms = this.#usageOf(job.host.session, now) + Math.max(0, used);
      this.#usage.set(job.host.session, { ms, at: now });
      job.chargedAt = now;
      job.chargedCpu = cpu;
    }
  }

  /**
   * Heavy: has used more than `heavyAfterMs` of thread time recently, and at least twice
   * as much as some other session that has work in the pool now.
   */
  #isHeavy(session: string): boolean {
    const mine = this.#usageOf(session);
    if (mine < this.#options.heavyAfterMs) return false;
    const others = new Set([...this.#running.keys(), ...this.#queues.keys()]);
    others.delete(session);
    for (const other of others) if (mine >= 2 * this.#usageOf(other)) return true;
    return false;
  }

  /** Lower the priority of threads running heavy sessions' jobs. */
  #rebalance(): void {
    this.#chargeRunning();
    for (const session of [...this.#usage.keys()])
      if (this.#usageOf(session) < 1 && !this.#running.has(session) && !this.#queues.has(session))
        this.#usage.delete(session); // forgotten: it has been idle for a while
    for (const thread of this.#threads)
      if (thread.job && !thread.demoted && this.#isHeavy(thread.job.host.session))
        this.#demote(thread);
    const busy = this.#threads.some((t) => t.job);
    if (busy && !this.#rebalancer) {
      this.#rebalancer = setInterval(() => this.#rebalance(), 250);
      this.#rebalancer.unref();
    } else if (!busy && this.#rebalancer) {
      clearInterval(this.#rebalancer);
      this.#rebalancer = undefined;
    }
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
    this.#dispatch();
    if (this.#closed) return;
    this.#rebalance();
    this.#keepSpare();
  }

  /**
   * While jobs run, keep one idle thread warm (up to `maxThreads`), so that a session
   * arriving with nothing running starts at once instead of waiting for a thread to load.
   */
  #keepSpare(): void {
    if (!this.#threads.some((t) => t.job)) return;
    if (this.#threads.some((t) => !t.job && !t.demoted)) return;
    if (this.#threads.length >= this.#options.maxThreads) return;
    this.#idle(this.#startThread());
  }

  #dispatch(): void {
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
    job.chargedAt = performance.now();
    job.chargedCpu = threadCpuMs(thread.tid);
    thread.post(job.message);
  }

  /** Lower a thread's CPU priority (nice 10) for good. */
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
    this.#chargeRunning();
    job.chargedAt = undefined;
    job.chargedCpu = undefined;
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
    if (!thread.gone) this.#idle(thread);
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
    clearInterval(this.#rebalancer);
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
