import { Bash, type BashOptions, type IFileSystem, type SecureFetch } from "just-bash";

type ExecutionLimits = NonNullable<BashOptions["executionLimits"]>;

export interface ShellRun {
  fs: IFileSystem;
  fetch: SecureFetch;
  cwd: string;
  env: Record<string, string>;
  /** Wall-clock limit for the whole command. */
  timeoutMs: number;
  /** Aggregate stdout+stderr bytes a command may produce. */
  maxOutputBytes: number;
  signal?: AbortSignal;
}

export interface ShellResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
  /** Set when the command was stopped by `timeoutMs`. */
  timedOut: boolean;
  /** Set when `signal` stopped it. */
  aborted: boolean;
}

/**
 * just-bash's "hardened" profile bounds memory per command (live bytes, strings, output),
 * which matters when hundreds of sessions share one process. Its iteration caps are meant
 * for hostile input; agents legitimately loop more, and time is bounded anyway, so those
 * go back to the "normal" values.
 */
function executionLimits(run: ShellRun): ExecutionLimits {
  return {
    maxCommandCount: 100_000,
    maxLoopIterations: 100_000,
    maxAwkIterations: 100_000,
    maxSedIterations: 100_000,
    maxJqIterations: 100_000,
    maxWorkUnits: 100_000_000,
    maxTraversalEntries: 1_000_000,
    maxTraversalWork: 1_000_000,
    maxGlobOperations: 1_000_000,
    maxOutputSize: run.maxOutputBytes,
    // Checked at every statement boundary, so it also ends loops that never yield.
    maxExecutionTimeMs: run.timeoutMs,
  };
}

const STOP_NOTICE = /^bash: (execution aborted|.*execution deadline)/;

function withoutStopNotice(stderr: string): string {
  return stderr
    .split("\n")
    .filter((line) => !STOP_NOTICE.test(line))
    .join("\n");
}

/**
 * Run one command line in a fresh just-bash interpreter over the session's filesystem.
 * The interpreter is built per command (well under a millisecond) and dropped afterwards,
 * so an idle session holds no shell state; like pi's own bash tool, every command starts
 * in `cwd` with a fresh environment.
 */
export async function runShell(command: string, run: ShellRun): Promise<ShellResult> {
  const controller = new AbortController();
  let timedOut = false;
  const onAbort = () => controller.abort(run.signal?.reason);
  run.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error("timeout"));
  }, run.timeoutMs);
  const started = Date.now();
  try {
    const bash = new Bash({
      fs: run.fs,
      cwd: run.cwd,
      env: run.env,
      fetch: run.fetch,
      executionLimitProfile: "hardened",
      executionLimits: executionLimits(run),
    });
    let result: Awaited<ReturnType<Bash["exec"]>>;
    try {
      result = await bash.exec(command, { signal: controller.signal, rawScript: true });
    } catch (error) {
      // just-bash lets a filesystem error while flushing a redirect (e.g. quota exceeded on
      // `cmd > file`) escape exec(); report it like bash would, as a failed command.
      const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
      return {
        stdout: Buffer.alloc(0),
        stderr: Buffer.from(`bash: ${message}\n`),
        exitCode: 1,
        timedOut,
        aborted: !timedOut && (run.signal?.aborted ?? false),
      };
    }
    // A loop that never yields is stopped by just-bash's own deadline (exit 124) before
    // our timer gets to run.
    if (result.exitCode === 124 && Date.now() - started >= run.timeoutMs) timedOut = true;
    const stopped = timedOut || (run.signal?.aborted ?? false);
    return {
      stdout: Buffer.from(result.stdout, result.stdoutKind === "bytes" ? "latin1" : "utf8"),
      // The caller reports timeouts and aborts itself; just-bash's own notice would repeat it.
      stderr: Buffer.from(stopped ? withoutStopNotice(result.stderr) : result.stderr, "utf8"),
      exitCode: result.exitCode,
      timedOut,
      aborted: !timedOut && (run.signal?.aborted ?? false),
    };
  } finally {
    clearTimeout(timer);
    run.signal?.removeEventListener("abort", onAbort);
  }
}
