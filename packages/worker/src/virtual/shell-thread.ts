/**
 * Entry point of a shell thread: runs just-bash commands for the main thread, so a command
 * that computes for a long time (or loops without yielding) stalls neither the pi sessions
 * nor the pool's protocol. Files are read and written directly on the volume; quota
 * accounting and network requests go back to the main thread, which owns both.
 */
import { readlinkSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { MountableFs, ReadWriteFs, type SecureFetch } from "just-bash";
import { sharedBaseFs } from "./base-fs.ts";
import { TMP_DIR, WORKSPACE_DIR } from "./paths.ts";
import { QuotaFs, UsageCounter, type UsageLedger } from "./quota-fs.ts";
import { globFiles, grepFiles } from "./search.ts";
import { runShell } from "./shell.ts";
import type {
  FetchResponse,
  FromThread,
  SearchJob,
  SearchOutcome,
  ShellJob,
  ToThread,
  VolumeSpec,
} from "./shell-protocol.ts";
import { skillsMount } from "./skills-fs.ts";

const port = parentPort;
if (!port) throw new Error("shell-thread.ts must run as a worker thread.");

const send = (message: FromThread, transfer: ArrayBuffer[] = []) =>
  port.postMessage(message, transfer);

const jobs = new Map<number, AbortController>();
const waiting = new Map<number, (message: ToThread) => void>();
let nextReq = 0;

function request(message: (req: number) => FromThread): Promise<ToThread> {
  const req = nextReq++;
  return new Promise((resolve) => {
    waiting.set(req, resolve);
    send(message(req));
  });
}

/** Borrows the volume's counter from the main thread for the length of one mutation. */
function remoteLedger(job: number, spec: VolumeSpec): UsageLedger {
  return {
    async serialize(fn) {
      const locked = await request((req) => ({ t: "lock", job, req }));
      if (locked.t !== "locked") throw new Error("unexpected reply to lock");
      if (locked.error) throw new Error(locked.error);
      const counter = new UsageCounter(spec.quota, locked.bytes, locked.entries);
      try {
        return await fn(counter);
      } finally {
        send({
          t: "unlock",
          job,
          req: locked.req,
          bytes: counter.bytes,
          entries: counter.entries,
          stale: counter.stale,
        });
      }
    },
  };
}

function remoteFetch(job: number): SecureFetch {
  return async (url, options = {}) => {
    const headers =
      options.headers instanceof Headers
        ? Object.fromEntries(options.headers.entries())
        : options.headers;
    const reply = await request((req) => ({
      t: "fetch",
      job,
      req,
      request: {
        url,
        method: options.method,
        headers,
        body: options.body,
        followRedirects: options.followRedirects,
        timeoutMs: options.timeoutMs,
        maxRedirects: options.maxRedirects,
      },
    }));
    if (reply.t !== "fetched" || !reply.response) {
      throw new Error(reply.t === "fetched" && reply.error ? reply.error : "request failed");
    }
    const response: FetchResponse = reply.response;
    return response;
  };
}

/** The session's virtual filesystem, as the main thread mounts it (see workspace.ts). */
function mountVolume(job: number, spec: VolumeSpec): MountableFs {
  const ledger = remoteLedger(job, spec);
  const volume = (root: string, mountPoint: string) =>
    new QuotaFs(
      new ReadWriteFs({
        root,
        allowSymlinks: true,
        maxFileReadSize: spec.quota.maxFileBytes,
        maxCopySize: spec.quota.maxFileBytes,
      }),
      mountPoint,
      ledger,
    );
  return new MountableFs({
    base: sharedBaseFs(),
    mounts: [
      { mountPoint: WORKSPACE_DIR, filesystem: volume(spec.volumeDir, WORKSPACE_DIR) },
      ...(spec.tmpDir ? [{ mountPoint: TMP_DIR, filesystem: volume(spec.tmpDir, TMP_DIR) }] : []),
      ...skillsMount(spec.skillsDir),
    ],
  });
}

async function run(job: number, spec: ShellJob): Promise<void> {
  const controller = new AbortController();
  jobs.set(job, controller);
  try {
    const fs = mountVolume(job, spec);
    const result = await runShell(spec.command, {
      fs,
      fetch: remoteFetch(job),
      cwd: spec.cwd,
      env: spec.env,
      timeoutMs: spec.timeoutMs,
      maxOutputBytes: spec.maxOutputBytes,
      signal: controller.signal,
    });
    const stdout = new Uint8Array(result.stdout);
    const stderr = new Uint8Array(result.stderr);
    send({ t: "done", job, result: { ...result, stdout, stderr } }, [
      stdout.buffer as ArrayBuffer,
      stderr.buffer as ArrayBuffer,
    ]);
  } catch (error) {
    const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
    send({
      t: "done",
      job,
      result: {
        stdout: new Uint8Array(0),
        stderr: new TextEncoder().encode(`bash: ${message}\n`),
        exitCode: 1,
        timedOut: false,
        aborted: controller.signal.aborted,
      },
    });
  } finally {
    jobs.delete(job);
  }
}

/** A find or grep: bounded in every dimension (see search.ts), stopped by abort. */
async function search(job: number, spec: SearchJob): Promise<void> {
  const controller = new AbortController();
  jobs.set(job, controller);
  const timer = setTimeout(() => controller.abort(new Error("timeout")), spec.timeoutMs);
  let result: SearchOutcome;
  try {
    const fs = mountVolume(job, spec);
    const common = {
      limit: spec.limit,
      maxOutputBytes: spec.maxOutputBytes,
      walk: spec.walk,
      signal: controller.signal,
    };
    result =
      spec.kind === "glob"
        ? {
            kind: "glob",
            ...(await globFiles(fs, spec.root, {
              ...common,
              pattern: spec.pattern,
              ignore: spec.ignore,
            })),
          }
        : {
            kind: "grep",
            ...(await grepFiles(fs, spec.root, spec.isDirectory, {
              ...common,
              pattern: spec.pattern,
              ignoreCase: spec.ignoreCase,
              literal: spec.literal,
              glob: spec.glob,
              context: spec.context,
              maxFileBytes: spec.maxFileBytes,
            })),
          };
  } catch (error) {
    const reason = controller.signal.reason as Error | undefined;
    const message =
      controller.signal.aborted && reason?.message === "timeout"
        ? "timeout" // the pool turns this into "stopped after N s"
        : error instanceof Error
          ? error.message.split("\n")[0]!
          : String(error);
    result = { kind: "error", message };
  } finally {
    clearTimeout(timer);
    jobs.delete(job);
  }
  send({ t: "searched", job, result });
}

/**
 * This thread's kernel id, so the pool can lower its CPU priority once its job has run for
 * a while (see ShellPool): JavaScript cannot preempt a loop that never yields, but the
 * kernel can prefer other threads.
 */
function threadId(): number | null {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null; // not Linux: fairness then rests on scheduling alone
  }
}
send({ t: "ready", tid: threadId() });

port.on("message", (message: ToThread) => {
  switch (message.t) {
    case "run":
      void run(message.job, message.spec);
      break;
    case "search":
      void search(message.job, message.spec);
      break;

    case "abort":
      jobs.get(message.job)?.abort(new Error("aborted"));
      break;
    case "fetched":
    case "locked": {
      const resolve = waiting.get(message.req);
      waiting.delete(message.req);
      resolve?.(message);
      break;
    }
  }
});
