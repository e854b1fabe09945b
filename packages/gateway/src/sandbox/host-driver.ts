import { realpath } from "node:fs/promises";
import { userInfo } from "node:os";
import { dirname } from "node:path";
import { createLogger, errorMessage, LobuError, type Logger } from "@lobu/core";
import { HELPER_ENV } from "./commands.ts";
import type {
  DriverProbe,
  EgressBinder,
  ExitInfo,
  SandboxDriver,
  SandboxInstance,
  SandboxSpec,
} from "./driver.ts";
import { checkSandboxId, workerEnv } from "./env.ts";
import {
  killTree,
  type LaunchedWorker,
  type WorkerLaunchConfig,
  WorkerLauncher,
} from "./launcher.ts";
import { treeUsage } from "./proc.ts";
import { volumeUsage } from "./volume.ts";

export interface HostDriverOptions {
  launcher?: WorkerLauncher | WorkerLaunchConfig;
  logger?: Logger;
  /** Default grace between `shutdown` and SIGTERM in stop() (default 5 s). */
  stopGraceMs?: number;
}

interface Running {
  spec: SandboxSpec;
  launched: LaunchedWorker;
  instance: SandboxInstance;
  stopReason?: string;
}

/**
 * No isolation: the worker is a plain child process of the gateway, running as the
 * gateway's user with the volume as its working directory. Its environment is
 * still built from scratch (never the gateway's) and it still gets exactly one
 * egress socket, but nothing stops it from reading anything the gateway can. The
 * gateway only uses it when the operator set `allow_unsandboxed = true`.
 */
export class HostDriver implements SandboxDriver {
  readonly name = "host" as const;
  readonly launcher: WorkerLauncher;
  readonly #logger: Logger;
  readonly #stopGraceMs: number;
  readonly #running = new Map<string, Running>();

  constructor(opts: HostDriverOptions = {}) {
    this.launcher =
      opts.launcher instanceof WorkerLauncher
        ? opts.launcher
        : new WorkerLauncher({ logger: opts.logger, ...opts.launcher });
    this.#logger = opts.logger ?? this.launcher.logger ?? createLogger("sandbox");
    this.#stopGraceMs = opts.stopGraceMs ?? 5000;
  }

  async probe(): Promise<DriverProbe> {
    return {
      driver: "host",
      isolated: false,
      ok: true,
      details: [
        `no isolation: agents run as ${safeUser()} with access to everything this gateway can reach (files, network, other agents); only for trusted single-user setups (allow_unsandboxed = true)`,
      ],
    };
  }

  async start(spec: SandboxSpec, egress: EgressBinder): Promise<SandboxInstance> {
    checkSandboxId(spec.id);
    if (this.#running.has(spec.id))
      throw new LobuError("sandbox_running", `sandbox ${spec.id} is already running`, {
        status: 409,
      });
    const log = this.#logger.child({ sandboxId: spec.id });
    const volumeDir = await realpath(spec.volumeDir);
    const binding = await egress.bind({ kind: "sandbox", sandboxId: spec.id });
    let launched: LaunchedWorker;
    try {
      const env = workerEnv(
        spec,
        { PATH: `${dirname(this.launcher.nodePath)}:${HELPER_ENV.PATH}`, HOME: volumeDir },
        { LOBU_EGRESS_SOCKET: binding.socketPath, LOBU_VOLUME: volumeDir },
      );
      const [command, ...args] = this.launcher.workerArgv();
      launched = await this.launcher.launch({
        sandboxId: spec.id,
        command: command!,
        args,
        env,
        cwd: volumeDir,
        detached: true,
      });
    } catch (err) {
      await binding.close().catch(() => {});
      throw err;
    }
    const rec: Running = { spec, launched, instance: undefined as unknown as SandboxInstance };
    const exited = launched.exited.then(async ({ code, signal }) => {
      // Take the worker's leftovers (tools it started) down with it.
      if (launched.child.pid) {
        try {
          process.kill(-launched.child.pid, "SIGKILL");
        } catch {
          // group already empty
        }
      }
      await binding
        .close()
        .catch((err) => log.warn({ err: errorMessage(err) }, "egress close failed"));
      this.#running.delete(spec.id);
      const info: ExitInfo = {
        code,
        signal,
        reason: rec.stopReason ?? (code === 0 ? "stopped" : "crashed"),
      };
      log.info(info, "sandbox stopped");
      return info;
    });
    rec.instance = {
      id: spec.id,
      driver: "host",
      startedAt: Date.now(),
      connection: launched.connection,
      exited,
      usage: async () => {
        const tree = launched.child.pid ? await treeUsage(launched.child.pid) : undefined;
        return {
          memoryBytes: tree?.memoryBytes,
          pids: tree?.pids,
          diskBytes: await volumeUsage(volumeDir, "watch"),
        };
      },
    };
    this.#running.set(spec.id, rec);
    log.warn("sandbox started WITHOUT isolation (host driver)");
    return rec.instance;
  }

  async stop(id: string, opts: { graceMs?: number; reason?: string } = {}): Promise<void> {
    const rec = this.#running.get(id);
    if (!rec) return;
    rec.stopReason ??= opts.reason ?? "stopped";
    const grace = opts.graceMs ?? this.#stopGraceMs;
    const { child, connection } = rec.launched;
    const within = (ms: number) =>
      Promise.race([
        rec.instance.exited.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), ms)),
      ]);
    if (grace > 0 && connection.open) {
      connection.send({ t: "shutdown" });
      if (await within(grace)) return;
      if (child.pid) {
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {
          // gone
        }
      }
      if (await within(Math.min(2000, grace))) return;
    }
    killTree(child, true);
    await rec.instance.exited;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#running.keys()].map((id) => this.stop(id, { graceMs: 2000 })));
  }
}

function safeUser(): string {
  try {
    return `user ${userInfo().username}`;
  } catch {
    return `uid ${process.getuid?.()}`;
  }
}

export function createHostDriver(opts: HostDriverOptions = {}): HostDriver {
  return new HostDriver(opts);
}
