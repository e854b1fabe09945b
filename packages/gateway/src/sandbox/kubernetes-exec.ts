import { PassThrough, type Readable, Writable } from "node:stream";
import * as k8s from "@kubernetes/client-node";

/**
 * A command in a pod's container through the API server's `pods/exec`
 * (a WebSocket with the channel protocol, as `kubectl exec`): its output as it
 * comes, its exit code from the final Status (`NonZeroExitCode` names it in
 * `details.causes`), and a time limit after which the connection is closed
 * (which ends the command with its session).
 */

export interface PodExecOptions {
  namespace: string;
  pod: string;
  container: string;
  command: string[];
  stdin?: Readable;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  timeoutMs?: number;
}

export interface PodExecResult {
  /** Null when it did not finish (timed out, the connection dropped). */
  exitCode: number | null;
  timedOut: boolean;
  /** The Status message of a failure other than a non-zero exit (the command could not start). */
  message?: string;
}

const sink = (onData: ((chunk: Buffer) => void) | undefined) =>
  new Writable({
    write(chunk: Buffer, _enc, done) {
      onData?.(chunk);
      done();
    },
  });

/** The exit code a v1 Status of an exec reports. */
export function execExitCode(status: k8s.V1Status): number | null {
  if (status.status === "Success") return 0;
  const cause = status.details?.causes?.find((c) => c.reason === "ExitCode");
  const code = Number(cause?.message);
  return Number.isInteger(code) ? code : null;
}

export async function podExec(kc: k8s.KubeConfig, opts: PodExecOptions): Promise<PodExecResult> {
  let status: k8s.V1Status | undefined;
  // Read from now on into a buffer of our own: a child process's pipe read only once the
  // socket is open lost what it had (observed with tar's stdout).
  const stdin = opts.stdin ? opts.stdin.pipe(new PassThrough()) : null;
  const ws = await new k8s.Exec(kc).exec(
    opts.namespace,
    opts.pod,
    opts.container,
    opts.command,
    sink(opts.onStdout),
    sink(opts.onStderr),
    stdin,
    false,
    (s) => {
      status = s;
    },
  );
  let timedOut = false;
  await new Promise<void>((resolve) => {
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            ws.close();
          }, opts.timeoutMs);
    ws.addEventListener("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  if (timedOut || !status) return { exitCode: null, timedOut };
  const exitCode = execExitCode(status);
  return {
    exitCode,
    timedOut: false,
    ...(exitCode === null && status.message ? { message: status.message } : {}),
  };
}
