import { dirname } from "node:path";
import { errorMessage, type Logger } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import { HELPER_ENV } from "./commands.ts";
import type { EgressBinder, EgressIdentity, ExitInfo, SandboxSpec } from "./driver.ts";
import { workerEnv } from "./env.ts";
import { killTree, type LaunchedWorker, type WorkerLauncher } from "./launcher.ts";
import { treeUsage } from "./proc.ts";

/**
 * A worker run as a plain child process of the gateway, in its own process group
 * (so whatever it starts goes down with it): the `host` driver's sandboxes, and
 * the `virtual` driver's pools where bubblewrap is not available.
 */
export interface PlainWorker {
  launched: LaunchedWorker;
  /** Resolves once the worker's group is gone and its egress socket is closed. */
  exited: Promise<ExitInfo>;
  /** Ask it to shut down; SIGTERM its group after `graceMs`, then SIGKILL. */
  stop(graceMs: number, reason?: string): Promise<void>;
  usage(): Promise<{ memoryBytes?: number; pids?: number }>;
}

export interface PlainWorkerOptions {
  launcher: WorkerLauncher;
  spec: SandboxSpec;
  egress: EgressBinder;
  identity: EgressIdentity;
  /** Working directory of the worker. */
  cwd: string;
  home: string;
  /** The driver's LOBU_* variables (the egress socket's is added here). */
  env: Record<string, string>;
  nodeArgs?: string[];
  log: Logger;
}

export async function startPlainWorker(opts: PlainWorkerOptions): Promise<PlainWorker> {
  const { launcher, spec, log } = opts;
  const binding = await opts.egress.bind(opts.identity);
  let launched: LaunchedWorker;
  try {
    const env = workerEnv(
      spec,
      { PATH: `${dirname(launcher.nodePath)}:${HELPER_ENV.PATH}`, HOME: opts.home },
      { ...opts.env, LOBU_EGRESS_SOCKET: binding.socketPath },
    );
    const [command, ...args] = launcher.workerArgv(opts.nodeArgs);
    launched = await launcher.launch({
      sandboxId: spec.id,
      command: command!,
      args,
      env,
      cwd: opts.cwd,
      detached: true,
    });
  } catch (err) {
    await binding
      .close()
      .catch(
        bestEffort(log, "egress socket left open after a failed start", { sandboxId: spec.id }),
      );
    throw err;
  }
  const { child, connection } = launched;
  const signalGroup = (signal: NodeJS.Signals) => {
    if (!child.pid) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // the group is already empty
    }
  };
  let stopReason: string | undefined;
  const exited = launched.exited.then(async ({ code, signal }): Promise<ExitInfo> => {
    // Take the worker's leftovers (tools it started) down with it.
    signalGroup("SIGKILL");
    await binding
      .close()
      .catch((err) => log.warn({ err: errorMessage(err) }, "egress close failed"));
    return { code, signal, reason: stopReason ?? (code === 0 ? "stopped" : "crashed") };
  });
  const within = (ms: number) =>
    Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(r, ms, false))]);
  return {
    launched,
    exited,
    async stop(graceMs, reason = "stopped") {
      stopReason ??= reason;
      if (graceMs > 0 && connection.open) {
        connection.send({ t: "shutdown" });
        if (await within(graceMs)) return;
        signalGroup("SIGTERM");
        if (await within(Math.min(2000, graceMs))) return;
      }
      killTree(child, true);
      await exited;
    },
    usage: async () => (child.pid ? treeUsage(child.pid) : {}),
  };
}
