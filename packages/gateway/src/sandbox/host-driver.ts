import { realpath } from "node:fs/promises";
import { userInfo } from "node:os";
import { LobuError, type Logger } from "@lobu/core";
import type {
  DriverProbe,
  EgressBinder,
  SandboxDriver,
  SandboxInstance,
  SandboxSpec,
} from "./driver.ts";
import { checkSandboxId } from "./env.ts";
import { launcherFrom, type WorkerLaunchConfig, type WorkerLauncher } from "./launcher.ts";
import { type PlainWorker, startPlainWorker } from "./plain-worker.ts";
import { volumeUsage } from "./volume.ts";

export interface HostDriverOptions {
  launcher?: WorkerLauncher | WorkerLaunchConfig;
  logger?: Logger;
  /** Default grace between `shutdown` and SIGTERM in stop() (default 5 s). */
  stopGraceMs?: number;
}

interface Running {
  worker: PlainWorker;
  instance: SandboxInstance;
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
    this.launcher = launcherFrom(opts.launcher, opts.logger);
    this.#logger = opts.logger ?? this.launcher.logger;
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
    const worker = await startPlainWorker({
      launcher: this.launcher,
      spec,
      egress,
      identity: { kind: "sandbox", sandboxId: spec.id },
      cwd: volumeDir,
      home: volumeDir,
      // No mounts here: the worker reads the skills' folder where the gateway keeps it.
      env: {
        LOBU_VOLUME: volumeDir,
        ...(spec.skillsDir ? { LOBU_SKILLS_DIR: spec.skillsDir } : {}),
      },
      log,
    });
    const exited = worker.exited.then((info) => {
      this.#running.delete(spec.id);
      log.info(info, "sandbox stopped");
      return info;
    });
    const instance: SandboxInstance = {
      id: spec.id,
      driver: "host",
      startedAt: Date.now(),
      connection: worker.launched.connection,
      exited,
      usage: async () => ({
        ...(await worker.usage()),
        diskBytes: await volumeUsage(volumeDir, "watch"),
      }),
    };
    this.#running.set(spec.id, { worker, instance });
    log.warn("sandbox started WITHOUT isolation (host driver)");
    return instance;
  }

  async stop(id: string, opts: { graceMs?: number; reason?: string } = {}): Promise<void> {
    const rec = this.#running.get(id);
    if (!rec) return;
    await rec.worker.stop(opts.graceMs ?? this.#stopGraceMs, opts.reason);
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
