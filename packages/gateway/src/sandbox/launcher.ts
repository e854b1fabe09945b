import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, realpathSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Duplex } from "node:stream";
import { fileURLToPath } from "node:url";
import {
  createLogger,
  LobuError,
  type Logger,
  PROTOCOL_VERSION,
  type WorkerToGateway,
} from "@lobu/core";
import { ChannelConnection } from "./connection.ts";
import { OutputCapture } from "./output.ts";

/**
 * The worker is the `@lobu/worker` package (its `./main` export), found the way
 * Node finds any dependency of the gateway, wherever it is installed.
 */
export function workerEntry(): string {
  return fileURLToPath(import.meta.resolve("@lobu/worker/main"));
}

/**
 * What a pooled command sandbox runs first (the worker package's `./command-proxy`):
 * an HTTP proxy forwarder on its loopback, then the command with the proxy variables.
 */
export function commandProxyEntry(): string {
  return realpathOr(fileURLToPath(import.meta.resolve("@lobu/worker/command-proxy")));
}

export interface WorkerLaunchConfig {
  /** Node binary for workers (default: the gateway's own, process.execPath). */
  nodePath?: string;
  /** Worker entry module (default: the `@lobu/worker` package's `./main`). */
  entry?: string;
  /** Arguments after the entry. */
  args?: string[];
  /** Node flags before the entry (e.g. `--max-old-space-size=…`). */
  nodeArgs?: string[];
  /** A worker that has not said `ready` after this long is killed (default 30 s). */
  readyTimeoutMs?: number;
  logger?: Logger;
}

export type ReadyMessage = Extract<WorkerToGateway, { t: "ready" }>;

export interface LaunchSpec {
  /** Sandbox id, for logs and errors. */
  sandboxId: string;
  /** Program to run; the worker argv (see WorkerLauncher.workerArgv) is somewhere in `args`. */
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  /** Extra stdio from fd 4 on: an open fd to hand over, or "pipe". */
  extraFds?: Array<number | "pipe">;
  /** Own process group, so the whole tree can be signalled. */
  detached?: boolean;
  /** Called right after spawn (feed data pipes, close fds handed over). */
  onSpawn?: (child: ChildProcess) => void;
}

export interface LaunchedWorker {
  child: ChildProcess;
  connection: ChannelConnection;
  ready: ReadyMessage;
  output: OutputCapture;
  /** Resolves once the process has exited and its streams are closed. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts worker processes and connects to them: fd 3 is the control channel, stdout
 * and stderr go (rate limited) to the gateway log. Shared by the sandbox drivers,
 * which decide what wraps the worker (bwrap, nothing).
 */
export class WorkerLauncher {
  readonly nodePath: string;
  readonly entry: string;
  readonly args: string[];
  readonly nodeArgs: string[];
  /** Where the worker's code and its dependencies live (see workerRuntimeDirs). */
  readonly runtimeDirs: string[];
  readonly readyTimeoutMs: number;
  readonly logger: Logger;

  constructor(config: WorkerLaunchConfig = {}) {
    this.nodePath = realpathOr(config.nodePath ?? process.execPath);
    this.entry = realpathOr(config.entry ?? workerEntry());
    this.runtimeDirs = workerRuntimeDirs(workerEntry());
    this.args = config.args ?? [];
    this.nodeArgs = config.nodeArgs ?? [];
    this.readyTimeoutMs = config.readyTimeoutMs ?? 30_000;
    this.logger = config.logger ?? createLogger("sandbox");
  }

  /** `[node, ...nodeArgs, entry, ...args]`, plus per-launch node flags. */
  workerArgv(extraNodeArgs: string[] = []): string[] {
    return [this.nodePath, ...this.nodeArgs, ...extraNodeArgs, this.entry, ...this.args];
  }

  /**
   * Spawn and wait for the worker's `ready`. Rejects (after killing the process) when
   * it exits first, never says ready, or speaks another protocol version; the error
   * carries the worker's last output.
   */
  async launch(spec: LaunchSpec): Promise<LaunchedWorker> {
    const bindings = { sandboxId: spec.sandboxId };
    const child = spawn(spec.command, spec.args, {
      stdio: ["ignore", "pipe", "pipe", "pipe", ...(spec.extraFds ?? [])],
      env: spec.env,
      cwd: spec.cwd ?? "/",
      detached: spec.detached ?? false,
    });
    // The far end of any pipe may vanish at any moment (bwrap closes the ones it
    // reads, a dying worker resets the rest): that is not the gateway's error.
    for (const stream of child.stdio) stream?.on("error", () => {});
    const output = new OutputCapture({ logger: this.logger, bindings });
    output.attach(child.stdout, "stdout");
    output.attach(child.stderr, "stderr");
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
      child.once("error", () => {
        // A spawn failure emits no exit.
        if (child.pid === undefined) res({ code: 127, signal: null });
      });
      // Processes the worker left behind may hold its stdout open: after the exit,
      // give the streams a moment to drain, then stop reading them.
      child.once("exit", (code, signal) => {
        const timer = setTimeout(() => {
          for (const stream of child.stdio) stream?.destroy();
          res({ code, signal });
        }, 250);
        child.once("close", () => {
          clearTimeout(timer);
          res({ code, signal });
        });
      });
    });
    spec.onSpawn?.(child);

    const channel = child.stdio[3] as Duplex | null;
    if (!channel) throw new Error("worker control channel (fd 3) was not created");
    const connection = new ChannelConnection(channel, {
      pid: child.pid,
      logger: this.logger,
      bindings,
    });

    let unsubscribe = () => {};
    let timer: NodeJS.Timeout | undefined;
    try {
      const ready = await new Promise<ReadyMessage>((resolveReady, rejectReady) => {
        unsubscribe = connection.onMessage((msg) => {
          if (msg.t === "ready") resolveReady(msg);
          else if (msg.t === "log")
            this.logger[msg.level]({ ...bindings, from: "worker" }, msg.msg.slice(0, 2000));
        });
        timer = setTimeout(
          () =>
            rejectReady(
              this.#failure(
                spec.sandboxId,
                child.pid,
                `did not become ready within ${Math.round(this.readyTimeoutMs / 1000)} s`,
                output,
              ),
            ),
          this.readyTimeoutMs,
        );
        exited.then(async ({ code, signal }) => {
          // Give the streams a moment to deliver the last words before reporting them.
          await new Promise((r) => setTimeout(r, 20));
          rejectReady(
            this.#failure(
              spec.sandboxId,
              child.pid,
              `exited before it was ready (${signal ? `signal ${signal}` : `exit code ${code}`})`,
              output,
            ),
          );
        });
        child.once("error", (err) =>
          rejectReady(
            new LobuError("sandbox_start_failed", `cannot start ${spec.command}: ${err.message}`, {
              status: 500,
              hint: "Check that the program exists and is executable (run `lobu doctor`).",
            }),
          ),
        );
      });
      if (ready.protocol !== PROTOCOL_VERSION) {
        throw this.#failure(
          spec.sandboxId,
          child.pid,
          `speaks protocol ${ready.protocol} but this gateway speaks ${PROTOCOL_VERSION}`,
          output,
          "Gateway and worker come from different versions; reinstall so they match.",
        );
      }
      return { child, connection, ready, output, exited };
    } catch (err) {
      killTree(child, spec.detached ?? false);
      connection.close();
      throw err;
    } finally {
      clearTimeout(timer);
      unsubscribe();
    }
  }

  #failure(
    sandboxId: string,
    pid: number | undefined,
    what: string,
    output: OutputCapture,
    hint?: string,
  ): LobuError {
    const tail = output.tailText();
    return new LobuError(
      "sandbox_start_failed",
      `worker for sandbox ${sandboxId} ${what}${tail ? `; its last output:\n${tail}` : " (it printed nothing)"}`,
      {
        status: 500,
        hint:
          hint ?? "Run `lobu doctor` to check the sandbox driver; the worker's output is above.",
        details: { sandboxId, pid, output: output.tail() },
      },
    );
  }
}

/** A driver's launcher: the one it was given, or one made from the given config. */
export function launcherFrom(
  launcher: WorkerLauncher | WorkerLaunchConfig | undefined,
  logger: Logger | undefined,
): WorkerLauncher {
  return launcher instanceof WorkerLauncher
    ? launcher
    : new WorkerLauncher({ logger, ...launcher });
}

/** SIGKILL a launched child (its whole process group when it has one). */
export function killTree(child: ChildProcess, group: boolean): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    if (group) process.kill(-child.pid, "SIGKILL");
    else child.kill("SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * The directories a worker's modules load from, derived from where its entry
 * resolved: the package that holds it, every `node_modules` Node would search
 * from there (the package's own, then each parent's), and where the packages
 * linked into those point (npm workspaces link `@lobu/core` to its source).
 * The process driver shows exactly these read-only in every sandbox.
 */
export function workerRuntimeDirs(entry: string): string[] {
  const dirs = new Set<string>();
  const packageDir = packageRoot(realpathOr(entry));
  dirs.add(packageDir);
  for (let dir = packageDir; ; dir = dirname(dir)) {
    const modules = join(dir, "node_modules");
    if (existsSync(modules)) {
      dirs.add(modules);
      for (const linked of linkedPackages(modules)) dirs.add(linked);
    }
    if (dirname(dir) === dir) break;
  }
  return [...dirs];
}

/** The nearest directory above `file` with a package.json. */
function packageRoot(file: string): string {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) return dirname(file);
  }
}

/** Real paths of the packages in `modules` that are links (`name` and `@scope/name`). */
function linkedPackages(modules: string): string[] {
  const linked: string[] = [];
  const visit = (dir: string, depth: number) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isSymbolicLink()) linked.push(realpathOr(path));
      else if (depth === 0 && entry.isDirectory() && entry.name.startsWith("@")) visit(path, 1);
    }
  };
  visit(modules, 0);
  return linked;
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}
