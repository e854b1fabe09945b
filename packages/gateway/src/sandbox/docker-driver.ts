import { chmod, chown, mkdir, realpath, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { digest, errorMessage, LobuError, type Logger } from "@lobu/core";
import { bestEffort, settled } from "@lobu/core/best-effort";
import Docker from "dockerode";
import type {
  DriverProbe,
  EgressBinder,
  ExecCommand,
  ExecResult,
  ExitInfo,
  SandboxDriver,
  SandboxInstance,
  SandboxSpec,
  SandboxUsage,
} from "./driver.ts";
import { workerEnv } from "./env.ts";
import { UidAllocator, writeVolumeMeta } from "./identity.ts";
import { launcherFrom, type WorkerLaunchConfig, type WorkerLauncher } from "./launcher.ts";
import { OutputCapture } from "./output.ts";
import { exitInfo } from "./process/supervise.ts";
import { awaitRemoteWorker } from "./remote-worker.ts";
import { guardedStart } from "./starts.ts";
import {
  adoptVolumeFiles,
  loopQuotaSupport,
  mountLoopVolume,
  unmount,
  volumeUsage,
} from "./volume.ts";
import { relayUnixSocket, WorkerEndpoint } from "./worker-endpoint.ts";

/** Paths inside every container. */
const RUN = "/run/lobu";
const WORKSPACE = "/workspace";
const SKILLS = "/skills";
const CA_BUNDLE = "/etc/ssl/certs/lobu-ca.pem";
/**
 * Host pids a gVisor sandbox needs besides the agent's own: its Sentry (the
 * user-space kernel), gofer and ptrace stubs are host threads in the
 * container's pids cgroup, and the Sentry panics when a clone fails there.
 */
const GVISOR_HOST_PIDS = 512;

export interface DockerDriverOptions {
  /** The driver's own state (uids, sockets), under the data dir. */
  stateDir: string;
  /** The sandbox image: an OS userland (sh, coreutils, the tools agents use); see docs/sandboxing.md. */
  image: string;
  /** OCI runtime: `runc` (default), `runsc` (gVisor), `kata`, or any name dockerd knows. */
  runtime?: string;
  /** Engine API socket (default /var/run/docker.sock, or DOCKER_HOST). */
  socketPath?: string;
  launcher?: WorkerLauncher | WorkerLaunchConfig;
  logger?: Logger;
  /** Host path of the CA bundle workers trust (mounted read-only). */
  caBundle?: string;
  /** First uid given to sandboxes (each volume gets its own). */
  uidBase?: number;
  /** Size of the writable /tmp (tmpfs) in MiB. */
  tmpMb?: number;
  stopGraceMs?: number;
}

interface Running {
  container: Docker.Container;
  instance: SandboxInstance;
  spec: SandboxSpec;
  uid: number;
  gid: number;
  stopReason?: string;
}

/**
 * The `docker` driver: one container per sandbox, made through the Engine API.
 * No network at all (`none`): the worker reaches the gateway only through two
 * Unix sockets mounted at /run/lobu (its control channel and its egress
 * socket). Read-only root, a uid of its own per volume, every capability
 * dropped, no-new-privileges, memory/CPU/pids limits, the volume at
 * /workspace. A stopped sandbox's container is removed (scale to zero); the
 * next message creates a new one on the same volume.
 *
 * The worker's code is the gateway's own (node and the `@lobu/worker` package,
 * mounted read-only at the same paths), so gateway and worker always match;
 * the image provides only the userland agents' tools run in. The Engine must
 * therefore run on the gateway's host (its socket is local).
 */
export class DockerDriver implements SandboxDriver {
  readonly name = "docker" as const;
  readonly launcher: WorkerLauncher;
  readonly #opts: DockerDriverOptions;
  readonly #logger: Logger;
  readonly #docker: Docker;
  readonly #uids: UidAllocator;
  readonly #running = new Map<string, Running>();
  readonly #starting = new Map<string, Promise<unknown>>();
  #closed = false;
  /** Containers a previous run of this gateway left, removed once before the first start. */
  #swept?: Promise<void>;
  /** Whether volumes are loop images of `disk_mb` (root with e2fsprogs), checked once. */
  #loop?: Promise<boolean>;
  /** Whether the OCI runtime is gVisor's runsc (by its registered path), asked once. */
  #gvisor?: Promise<boolean>;

  constructor(opts: DockerDriverOptions) {
    this.#opts = opts;
    this.launcher = launcherFrom(opts.launcher, opts.logger);
    this.#logger = opts.logger ?? this.launcher.logger;
    this.#docker = new Docker(
      opts.socketPath || !process.env.DOCKER_HOST
        ? { socketPath: opts.socketPath ?? "/var/run/docker.sock" }
        : undefined,
    );
    this.#uids = new UidAllocator({ stateDir: opts.stateDir, uidBase: opts.uidBase ?? 400_000 });
  }

  /** Containers of this gateway carry this label value (two data dirs on one Engine never meet). */
  get #owner(): string {
    return digest(this.#opts.stateDir, 12);
  }

  #containerName(id: string): string {
    return `lobu-${this.#owner}-${id}`;
  }

  get #runRoot(): string {
    return join(this.#opts.stateDir, "docker-run");
  }

  running(): string[] {
    return [...this.#running.keys()];
  }

  async probe(): Promise<DriverProbe> {
    const details: string[] = [];
    const runtime = this.#opts.runtime ?? "runc";
    try {
      const info = (await this.#docker.info()) as {
        ServerVersion?: string;
        Runtimes?: Record<string, unknown>;
      };
      details.push(`Docker Engine ${info.ServerVersion ?? "?"} answers`);
      if (!info.Runtimes?.[runtime]) {
        details.push(
          `the OCI runtime "${runtime}" is not registered with dockerd (it has: ${Object.keys(info.Runtimes ?? {}).join(", ")}); add it to /etc/docker/daemon.json "runtimes", or pick another with [sandbox.docker] runtime`,
        );
        return { driver: "docker", isolated: true, ok: false, details };
      }
      details.push(`OCI runtime ${runtime}`);
      try {
        await this.#docker.getImage(this.#opts.image).inspect();
        details.push(`image ${this.#opts.image} is present`);
      } catch {
        details.push(
          `the sandbox image ${this.#opts.image} is not present; build or pull it (docs/sandboxing.md)`,
        );
        return { driver: "docker", isolated: true, ok: false, details };
      }
      return { driver: "docker", isolated: true, ok: true, details };
    } catch (err) {
      details.push(
        `cannot reach the Docker Engine at ${this.#opts.socketPath ?? process.env.DOCKER_HOST ?? "/var/run/docker.sock"}: ${errorMessage(err)} (start dockerd, or give the gateway access to its socket)`,
      );
      return { driver: "docker", isolated: true, ok: false, details };
    }
  }

  async start(spec: SandboxSpec, egress: EgressBinder): Promise<SandboxInstance> {
    return guardedStart(
      spec.id,
      { closed: this.#closed, running: this.#running.has(spec.id), starting: this.#starting },
      () => this.#start(spec, egress),
    );
  }

  /** Loop images enforce `disk_mb` as the `process` driver does; else disk use is not limited. */
  #loopQuota(log: Logger): Promise<boolean> {
    this.#loop ??= loopQuotaSupport(this.#opts.stateDir, log).then((r) => {
      if (!r.ok) log.warn({ detail: r.detail }, "docker sandboxes' disk_mb is not enforced");
      return r.ok;
    });
    return this.#loop;
  }

  #isGvisor(): Promise<boolean> {
    const runtime = this.#opts.runtime ?? "runc";
    this.#gvisor ??= this.#docker
      .info()
      .then((info: { Runtimes?: Record<string, { path?: string }> }) =>
        /(^|\/)runsc[^/]*$/.test(info.Runtimes?.[runtime]?.path ?? runtime),
      )
      .catch((err) => {
        this.#gvisor = undefined;
        throw err;
      });
    return this.#gvisor;
  }

  /**
   * A gateway that died left its containers (their workers exit when the
   * control socket goes, so they are stopped, not running): remove every
   * container of this data dir once, before the first start.
   */
  #sweep(): Promise<void> {
    this.#swept ??= (async () => {
      const left = await this.#docker.listContainers({
        all: true,
        filters: { label: [`lobu.owner=${this.#owner}`] },
      });
      for (const c of left) {
        if (this.#running.has(c.Labels["lobu.sandbox"] ?? "")) continue;
        await this.#remove(c.Id);
      }
      if (left.length > 0)
        this.#logger.info(
          { removed: left.length },
          "removed sandbox containers left by an earlier run",
        );
    })().catch((err) => {
      this.#swept = undefined;
      throw err;
    });
    return this.#swept;
  }

  async #start(spec: SandboxSpec, egress: EgressBinder): Promise<SandboxInstance> {
    const log = this.#logger.child({ sandboxId: spec.id });
    await this.#sweep();
    const root = process.getuid?.() === 0;
    let { meta } = await this.#uids.forVolume(spec.volumeDir);
    // The volume's loop image is mounted on its folder before the container binds that folder.
    const loop = await this.#loopQuota(log);
    const volumeAt = await realpath(spec.volumeDir);
    if (loop) {
      const mounted = await mountLoopVolume({
        volumeDir: spec.volumeDir,
        meta,
        diskMb: spec.limits.diskMb,
        stateDir: this.#opts.stateDir,
        logger: log,
      });
      if (mounted.imageMb !== meta.imageMb) await writeVolumeMeta(spec.volumeDir, mounted);
      meta = mounted;
    }
    const unmountVolume = () => (loop ? unmount(volumeAt, log) : Promise.resolve());
    if (root) {
      await chown(spec.volumeDir, meta.uid, meta.gid);
      await adoptVolumeFiles(spec.volumeDir, meta.uid, meta.gid);
    }
    await chmod(spec.volumeDir, root ? 0o700 : 0o777);
    const binding = await egress.bind({ kind: "sandbox", sandboxId: spec.id });
    const name = this.#containerName(spec.id);
    // A container left by a gateway that died is this sandbox's past: remove it.
    await this.#remove(name);
    // The sandbox's /run/lobu: its control socket (token-checked) and a relay to its egress socket.
    const runDir = join(this.#runRoot, spec.id);
    await rm(runDir, { recursive: true, force: true });
    await mkdir(runDir, { recursive: true, mode: root ? 0o700 : 0o755 });
    if (root) await chown(runDir, meta.uid, meta.gid);
    const endpoint = await WorkerEndpoint.listen({ path: join(runDir, "control.sock") }, log);
    const relay = await relayUnixSocket(join(runDir, "egress.sock"), binding.socketPath);
    const release = async () => {
      await unmountVolume().catch((err) =>
        log.warn({ err: errorMessage(err) }, "sandbox volume not unmounted"),
      );
      await endpoint.close();
      await new Promise<void>((r) => relay.close(() => r()));
      await binding.close().catch(bestEffort(log, "egress socket of a stopped sandbox not closed"));
      await rm(runDir, { recursive: true, force: true });
    };
    const output = new OutputCapture({ logger: this.#logger, bindings: { sandboxId: spec.id } });
    let container: Docker.Container | undefined;
    let ended: Promise<{ StatusCode: number }> | undefined;
    try {
      const { connection, revoke } = await awaitRemoteWorker({
        sandboxId: spec.id,
        endpoint,
        logger: log,
        readyTimeoutMs: this.launcher.readyTimeoutMs,
        output,
        run: async (token) => {
          container = await this.#docker.createContainer(
            this.#containerSpec(spec, name, meta, runDir, token, await this.#isGvisor()),
          );
          const stream = await container.attach({ stream: true, stdout: true, stderr: true });
          const out = new PassThrough();
          const err = new PassThrough();
          container.modem.demuxStream(stream, out, err);
          stream.on("end", () => {
            out.end();
            err.end();
          });
          output.attach(out, "stdout");
          output.attach(err, "stderr");
          ended = container.wait({ condition: "next-exit" }) as Promise<{ StatusCode: number }>;
          await container.start();
          return { ended: ended.then((r) => `exit code ${r.StatusCode}`) };
        },
      });
      const started = container as unknown as Docker.Container;
      const done = ended as unknown as Promise<{ StatusCode: number }>;
      const rec: Running = {
        container: started,
        spec,
        uid: meta.uid,
        gid: meta.gid,
        instance: undefined as unknown as SandboxInstance,
      };
      const exited = done
        .catch(() => ({ StatusCode: 137 }))
        .then(async ({ StatusCode }): Promise<ExitInfo> => {
          const state = await started
            .inspect()
            .then((i) => i.State)
            .catch(() => undefined);
          connection.close();
          revoke();
          await this.#remove(name);
          await release();
          this.#running.delete(spec.id);
          const info = exitInfo(
            { code: StatusCode, signal: null },
            {
              oom: state?.OOMKilled === true,
              ...(rec.stopReason ? { stopReason: rec.stopReason } : {}),
            },
          );
          if (info.reason === "crashed" || info.reason === "oom")
            log.warn({ ...info, output: output.tail().slice(-10) }, "sandbox container died");
          else log.info(info, "sandbox container stopped");
          return info;
        });
      rec.instance = {
        id: spec.id,
        driver: "docker",
        startedAt: Date.now(),
        connection,
        exited,
        usage: () => this.#usage(rec),
      };
      this.#running.set(spec.id, rec);
      log.info(
        { container: name, uid: meta.uid, runtime: this.#opts.runtime ?? "runc" },
        "sandbox started",
      );
      return rec.instance;
    } catch (err) {
      await this.#remove(name);
      await release();
      throw err;
    }
  }

  #containerSpec(
    spec: SandboxSpec,
    name: string,
    meta: { uid: number; gid: number },
    runDir: string,
    token: string,
    gvisor: boolean,
  ): Docker.ContainerCreateOptions {
    const launcher = this.launcher;
    const env = workerEnv(
      spec,
      { HOME: WORKSPACE, PATH: `${dirname(launcher.nodePath)}:/usr/local/bin:/usr/bin:/bin` },
      {
        LOBU_EGRESS_SOCKET: `${RUN}/egress.sock`,
        LOBU_CONTROL: `${RUN}/control.sock`,
        LOBU_WORKER_TOKEN: token,
        LOBU_VOLUME: WORKSPACE,
        ...(this.#opts.caBundle ? { LOBU_CA_BUNDLE: CA_BUNDLE } : {}),
        ...(spec.skillsDir ? { LOBU_SKILLS_DIR: SKILLS } : {}),
      },
    );
    // The worker's runtime, read-only at the same paths: node, the worker package, its node_modules.
    const runtime = [dirname(launcher.nodePath), dirname(launcher.entry), ...launcher.runtimeDirs];
    const binds = [
      `${spec.volumeDir}:${WORKSPACE}:rw`,
      `${runDir}:${RUN}:ro`,
      ...[...new Set(runtime)].map((d) => `${d}:${d}:ro`),
      ...(spec.skillsDir ? [`${spec.skillsDir}:${SKILLS}:ro`] : []),
      ...(this.#opts.caBundle ? [`${this.#opts.caBundle}:${CA_BUNDLE}:ro`] : []),
    ];
    const memory = spec.limits.memoryMb * 1024 * 1024;
    return {
      name,
      Image: this.#opts.image,
      Cmd: launcher.workerArgv([
        `--max-old-space-size=${Math.max(64, Math.floor(spec.limits.memoryMb * 0.75))}`,
      ]),
      Entrypoint: [],
      User: `${meta.uid}:${meta.gid}`,
      WorkingDir: WORKSPACE,
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      Labels: { "lobu.sandbox": spec.id, "lobu.owner": this.#owner },
      NetworkDisabled: true,
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: {
        NetworkMode: "none",
        ReadonlyRootfs: true,
        Binds: binds,
        Tmpfs: { "/tmp": `rw,nosuid,nodev,size=${this.#opts.tmpMb ?? 64}m` },
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges"],
        Memory: memory,
        MemorySwap: memory,
        NanoCpus: Math.round(spec.limits.cpus * 1e9),
        // RLIMIT_NPROC (per uid, and each sandbox has its own) holds the agent to `pids` under
        // every runtime; the pids cgroup also counts gVisor's own host threads (see GVISOR_HOST_PIDS).
        Ulimits: [{ Name: "nproc", Soft: spec.limits.pids, Hard: spec.limits.pids }],
        PidsLimit: spec.limits.pids + (gvisor ? GVISOR_HOST_PIDS : 0),
        IpcMode: "private",
        Init: true,
        ...(this.#opts.runtime ? { Runtime: this.#opts.runtime } : {}),
      },
    };
  }

  async #usage(rec: Running): Promise<SandboxUsage> {
    const out: SandboxUsage = {};
    try {
      const stats = (await rec.container.stats({ stream: false })) as {
        memory_stats?: { usage?: number };
        pids_stats?: { current?: number };
      };
      if (stats.memory_stats?.usage !== undefined) out.memoryBytes = stats.memory_stats.usage;
      if (stats.pids_stats?.current !== undefined) out.pids = stats.pids_stats.current;
    } catch {
      // gone meanwhile
    }
    const disk = await volumeUsage(rec.spec.volumeDir, (await this.#loop) ? "loop" : "watch");
    if (disk !== undefined) out.diskBytes = disk;
    return out;
  }

  /** Remove the container `name` and wait until it is gone (the name is free again). */
  async #remove(name: string): Promise<void> {
    const container = this.#docker.getContainer(name);
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        await container.remove({ force: true });
      } catch (err) {
        const status = (err as { statusCode?: number }).statusCode;
        if (status === 404) return;
        // 409: a removal is already under way; anything else is the Engine's problem.
        if (status !== 409) throw err;
      }
      try {
        await container.inspect();
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return;
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    this.#logger.warn({ container: name }, "sandbox container not removed after 10 s");
  }

  async stop(id: string, opts: { graceMs?: number; reason?: string } = {}): Promise<void> {
    await settled(this.#starting.get(id));
    const rec = this.#running.get(id);
    if (!rec) return;
    rec.stopReason ??= opts.reason ?? "stopped";
    const graceMs = opts.graceMs ?? this.#opts.stopGraceMs ?? 5000;
    if (graceMs > 0 && rec.instance.connection) {
      rec.instance.connection.send({ t: "shutdown" });
      const gone = await Promise.race([
        rec.instance.exited.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), graceMs)),
      ]);
      if (gone) return;
    }
    // Docker's stop: SIGTERM, then SIGKILL after `t` seconds.
    await rec.container
      .stop({ t: 2 })
      .catch(bestEffort(this.#logger, "sandbox container not stopped", { sandboxId: id }));
    await rec.instance.exited;
  }

  async exec(
    id: string,
    command: ExecCommand,
    opts: { timeoutMs?: number; onData?: (chunk: string) => void } = {},
  ): Promise<ExecResult> {
    const rec = this.#running.get(id);
    if (!rec)
      throw new LobuError("sandbox_not_running", `sandbox ${id} is not running`, {
        status: 404,
        hint: "Start it (send it a message) and try again.",
      });
    const cmd = typeof command === "string" ? ["/bin/sh", "-c", command] : [...command];
    const exec = await rec.container.exec({
      Cmd: cmd,
      User: `${rec.uid}:${rec.gid}`,
      WorkingDir: WORKSPACE,
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    let output = "";
    const sink = new PassThrough();
    sink.setEncoding("utf8");
    sink.on("data", (chunk: string) => {
      output += chunk;
      opts.onData?.(chunk);
    });
    rec.container.modem.demuxStream(stream, sink, sink);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const finished = await Promise.race([
      new Promise<boolean>((r) => {
        stream.on("end", () => r(true));
        stream.on("close", () => r(true));
      }),
      new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs)),
    ]);
    if (!finished) {
      stream.destroy();
      return { exitCode: null, output, timedOut: true };
    }
    const info = await exec.inspect();
    return { exitCode: info.ExitCode ?? null, output };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#starting.values()].map(settled));
    await Promise.all(
      this.running().map((id) => this.stop(id, { graceMs: 2000, reason: "stopped" })),
    );
  }
}

export function createDockerDriver(opts: DockerDriverOptions): DockerDriver {
  return new DockerDriver(opts);
}
