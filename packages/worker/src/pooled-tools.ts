import { type GatewayToWorker, newId, type WorkerToGateway } from "@lobu/core";
import type { CommandRunner } from "./virtual/index.ts";

type ToolExecResult = Extract<GatewayToWorker, { t: "tool_exec_result" }>;

/**
 * The pooled process tier (`process_mode = "pooled"`): the pool hosts the agent
 * loops, but a bash command runs in a bubblewrap sandbox of the conversation's
 * own, over its volume, which the gateway starts. The pool is itself inside
 * bwrap without the rights to make sandboxes, and the gateway already holds
 * the conversation's uid, cgroup and egress identity, so the pool only asks.
 */
export class PooledCommands {
  readonly #send: (msg: WorkerToGateway) => void;
  readonly #pending = new Map<string, (result: ToolExecResult) => void>();

  constructor(send: (msg: WorkerToGateway) => void) {
    this.#send = send;
  }

  /** The bash runner of sandbox `sandboxId`'s workspace. */
  runnerFor(sandboxId: string): CommandRunner {
    return (command, { cwd, env, timeoutMs, signal }) => {
      const callId = newId("tx");
      return new Promise((resolve) => {
        const onAbort = () => this.#send({ t: "tool_exec_cancel", sandboxId, callId });
        signal.addEventListener("abort", onAbort, { once: true });
        this.#pending.set(callId, (r) => {
          signal.removeEventListener("abort", onAbort);
          const stderr = r.error ? `${r.stderr}${r.error}\n` : r.stderr;
          resolve({
            stdout: Buffer.from(r.stdout),
            stderr: Buffer.from(stderr),
            exitCode: r.exitCode ?? (r.error ? 126 : 137),
            timedOut: r.timedOut ?? false,
            aborted: signal.aborted && !r.timedOut,
          });
        });
        this.#send({ t: "tool_exec", sandboxId, callId, command, cwd, env, timeoutMs });
      });
    };
  }

  /** A `tool_exec_result` from the gateway: true when it was one of ours. */
  result(msg: ToolExecResult): boolean {
    const done = this.#pending.get(msg.callId);
    if (!done) return false;
    this.#pending.delete(msg.callId);
    done(msg);
    return true;
  }
}
