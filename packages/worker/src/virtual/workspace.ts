import { lstat, mkdir } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { settled } from "@lobu/core/best-effort";
import { type IFileSystem, MountableFs, ReadWriteFs, type SecureFetch } from "just-bash";
import { sharedBaseFs } from "./base-fs.ts";
import { createVirtualFetch, type VirtualNetworkOptions } from "./network.ts";
import { confinePath, TMP_DIR, VOLUME_TMP_DIR, WORKSPACE_DIR } from "./paths.ts";
import { QuotaFs, VolumeUsage } from "./quota-fs.ts";
import type { SearchRequest } from "./search-tools.ts";
import type { ShellResult } from "./shell.ts";
import { type ShellPool, sharedShellPool } from "./shell-pool.ts";
import type { SearchOutcome } from "./shell-protocol.ts";
import { skillsMount } from "./skills-fs.ts";
import {
  type AnyToolDefinition,
  createVirtualTools,
  type ToolBackend,
  type VirtualToolName,
} from "./tools.ts";

export interface VirtualLimits {
  /** Largest single file, written or read (default 10 MiB). */
  maxFileBytes: number;
  /** Total bytes of the volume, /tmp included (default 256 MiB). */
  maxTotalBytes: number;
  /** Files + directories + links in the volume (default 50 000). */
  maxEntries: number;
  /** Wall-clock limit per bash command; a shorter `timeout` from the model wins (default 120 s). */
  maxCommandMs: number;
  /** stdout+stderr one command may produce, held in memory while it runs (default 16 MiB). */
  maxOutputBytes: number;
  /** Wall-clock limit per find or grep (default 30 s). */
  maxSearchMs: number;
  /** Wall-clock limit per read, write, edit or ls call (default 60 s). */
  maxToolMs: number;
}

export const DEFAULT_VIRTUAL_LIMITS: Readonly<VirtualLimits> = Object.freeze({
  maxFileBytes: 10 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
  maxEntries: 50_000,
  maxCommandMs: 120_000,
  maxOutputBytes: 16 * 1024 * 1024,
  maxSearchMs: 30_000,
  maxToolMs: 60_000,
});

/** A tool call in progress, as the pool's call journal sees it. */
export interface ToolCallInfo {
  tool: string;
  /** Where its work runs: the pool's main thread, or a shell thread. */
  where: "main" | "thread";
}

export interface VirtualWorkspaceOptions {
  /**
   * Absolute host directory that stores the session's files; the agent sees it as
   * /workspace (and its `.tmp` subdirectory as /tmp). Created on first use.
   */
  volumeDir: string;
  /** Extra shell environment: placeholders only, never real secrets. */
  env?: Record<string, string>;
  network?: VirtualNetworkOptions;
  limits?: Partial<VirtualLimits>;
  /** Threads that run the bash commands (default: one pool shared by the process). */
  shellPool?: ShellPool;
  /** Told when a tool call starts; the function it returns is called when it ends. */
  onCall?: (call: ToolCallInfo) => () => void;
  /** Host directory of the sandbox's skill files, shown read-only at /skills. */
  skillsDir?: string;
  /**
   * Run bash commands somewhere else than the virtual shell (the pooled process
   * tier: a real sandbox over the same volume, see ../pooled-tools.ts).
   */
  runCommand?: CommandRunner;
}

/** Runs one bash command line for the bash tool, with the environment and limits given. */
export type CommandRunner = (
  command: string,
  options: { cwd: string; env: Record<string, string>; timeoutMs: number; signal: AbortSignal },
) => Promise<ShellResult>;

export interface VirtualExecOptions {
  /** Virtual directory to start in (default /workspace). */
  cwd?: string;
  /** Added to the workspace environment for this command. */
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** Shorter limit than `limits.maxCommandMs` for this command. */
  timeoutMs?: number;
}

export interface VirtualExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  timedOut: boolean;
  aborted: boolean;
}

export interface VirtualUsage {
  bytes: number;
  entries: number;
  maxTotalBytes: number;
  maxEntries: number;
}

export interface VirtualWorkspace {
  readonly volumeDir: string;
  /** The agent's home and default cwd: "/workspace". */
  readonly home: string;
  readonly limits: Readonly<VirtualLimits>;
  /**
   * pi tool definitions with the standard names (read, bash, edit, write, grep, find, ls)
   * over this workspace. Pass them as `customTools` to createAgentSession together with
   * `tools: [...VIRTUAL_TOOL_NAMES]`; they replace pi's host-backed built-ins.
   */
  tools(cwd?: string, names?: readonly VirtualToolName[]): AnyToolDefinition[];
  /** Run one command line the way the bash tool does. */
  exec(command: string, options?: VirtualExecOptions): Promise<VirtualExecResult>;
  /** Replace the extra environment (e.g. new placeholders sent with a turn). */
  setEnv(env: Record<string, string>): void;
  usage(): Promise<VirtualUsage>;
  /** Abort running commands and drop everything held in memory; files stay on disk. */
  dispose(): Promise<void>;
  readonly disposed: boolean;
}

interface Mounted {
  fs: IFileSystem;
  usage: VolumeUsage;
  /** Null when the agent put something other than a directory at /workspace/.tmp. */
  tmpRoot: string | null;
}

/** Fixed part of the shell environment; the user's env cannot change these. */
function baseEnv(cwd: string): Record<string, string> {
  return {
    HOME: WORKSPACE_DIR,
    PWD: cwd,
    TMPDIR: TMP_DIR,
    USER: "user",
    LOGNAME: "user",
    SHELL: "/bin/bash",
    PATH: "/usr/bin:/bin",
    LANG: "C.UTF-8",
  };
}

class Workspace implements VirtualWorkspace {
  readonly volumeDir: string;
  readonly home = WORKSPACE_DIR;
  readonly limits: Readonly<VirtualLimits>;
  #env: Record<string, string>;
  readonly #network: VirtualNetworkOptions | undefined;
  readonly #shells: ShellPool | undefined;
  #fetch: SecureFetch | undefined;
  #mounted: Promise<Mounted> | undefined;
  readonly #backend: ToolBackend;
  readonly #running = new Set<AbortController>();
  readonly #onCall: ((call: ToolCallInfo) => () => void) | undefined;
  readonly #skillsDir: string | undefined;
  readonly #runCommand: CommandRunner | undefined;
  /** Main-thread tool calls of this session run one after another. */
  #mainThreadTail: Promise<unknown> = Promise.resolve();
  #disposed = false;

  constructor(options: VirtualWorkspaceOptions) {
    if (!isAbsolute(options.volumeDir)) {
      throw new Error(`volumeDir must be an absolute path, got "${options.volumeDir}".`);
    }
    this.volumeDir = options.volumeDir;
    this.limits = Object.freeze({ ...DEFAULT_VIRTUAL_LIMITS, ...options.limits });
    this.#env = { ...options.env };
    this.#network = options.network;
    this.#shells = options.shellPool;
    this.#onCall = options.onCall;
    this.#skillsDir = options.skillsDir;
    this.#runCommand = options.runCommand;
    this.#backend = {
      fs: async () => (await this.#mount()).fs,
      run: (command, options) => this.#tracked("bash", () => this.#run(command, options)),
      search: (request, signal) =>
        this.#tracked(request.kind === "glob" ? "find" : "grep", () =>
          this.#search(request, signal),
        ),
      mainThreadCall: (tool, signal, fn) => this.#mainThreadCall(tool, signal, fn),
      maxFileBytes: this.limits.maxFileBytes,
    };
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  #assertLive(): void {
    if (this.#disposed) {
      throw new Error(
        "This virtual workspace was disposed; create a new one from the same volumeDir to continue.",
      );
    }
  }

  /** Mount the volume on first use; cheap objects, but nothing exists before a tool runs. */
  #mount(): Promise<Mounted> {
    this.#assertLive();
    if (this.#mounted) return this.#mounted;
    const mounting = (async () => {
      await mkdir(this.volumeDir, { recursive: true });
      let tmpRoot: string | null = join(this.volumeDir, VOLUME_TMP_DIR);
      // /tmp then falls back to the read-only base, rather than the whole workspace failing.
      await mkdir(tmpRoot).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "EEXIST") throw error;
      });
      // lstat: a symlink here could point anywhere on the host.
      if (
        !(await lstat(tmpRoot).then(
          (st) => st.isDirectory(),
          () => false,
        ))
      )
        tmpRoot = null;
      const rw = (root: string) =>
        new ReadWriteFs({
          root,
          allowSymlinks: true,
          maxFileReadSize: this.limits.maxFileBytes,
          maxCopySize: this.limits.maxFileBytes,
        });
      const workspace = rw(this.volumeDir);
      const usage = new VolumeUsage(workspace, this.limits);
      const fs = new MountableFs({
        base: sharedBaseFs(),
        mounts: [
          { mountPoint: WORKSPACE_DIR, filesystem: new QuotaFs(workspace, WORKSPACE_DIR, usage) },
          ...(tmpRoot
            ? [{ mountPoint: TMP_DIR, filesystem: new QuotaFs(rw(tmpRoot), TMP_DIR, usage) }]
            : []),
          ...skillsMount(this.#skillsDir),
        ],
      });
      return { fs, usage, tmpRoot };
    })();
    mounting.catch(() => {
      if (this.#mounted === mounting) this.#mounted = undefined; // retry on the next call
    });
    this.#mounted = mounting;
    return mounting;
  }

  /** Record a shell-thread call in the call journal for as long as it runs. */
  async #tracked<T>(tool: string, fn: () => Promise<T>): Promise<T> {
    const end = this.#onCall?.({ tool, where: "thread" });
    try {
      return await fn();
    } finally {
      end?.();
    }
  }

  /**
   * A call whose work runs on the pool's main thread: queued behind the session's other
   * main-thread calls (one session cannot pile up parallel reads of large files), recorded
   * in the call journal while it runs (a pool that dies then is blamed on this session),
   * and stopped at `maxToolMs` with a message that says so. Its work is bounded by the file
   * size limits, so the deadline is a backstop, not the plan.
   */
  #mainThreadCall<T>(
    tool: string,
    signal: AbortSignal | undefined,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    this.#assertLive();
    const turn = this.#mainThreadTail.then(async () => {
      if (signal?.aborted) throw new Error("Operation aborted");
      const controller = new AbortController();
      const onAbort = () => controller.abort(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#running.add(controller);
      const end = this.#onCall?.({ tool, where: "main" });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          controller.abort(new Error("deadline"));
          reject(
            new Error(
              `The ${tool} call was stopped after ${this.limits.maxToolMs / 1000} s (the limit for one call). Work on a smaller file or a smaller part of it.`,
            ),
          );
        }, this.limits.maxToolMs);
      });
      try {
        return await Promise.race([fn(controller.signal), deadline]);
      } finally {
        clearTimeout(timer);
        end?.();
        this.#running.delete(controller);
        signal?.removeEventListener("abort", onAbort);
      }
    });
    this.#mainThreadTail = settled(turn);
    return turn;
  }

  async #search(request: SearchRequest, signal?: AbortSignal): Promise<SearchOutcome> {
    const { usage, tmpRoot } = await this.#mount();
    this.#fetch ??= createVirtualFetch(this.#network);
    const shells = this.#shells ?? sharedShellPool();
    return shells.search(
      {
        ...request,
        volumeDir: this.volumeDir,
        tmpDir: tmpRoot,
        ...(this.#skillsDir ? { skillsDir: this.#skillsDir } : {}),
        quota: this.#quota(),
        timeoutMs: this.limits.maxSearchMs,
      } as Parameters<ShellPool["search"]>[0],
      { session: this.volumeDir, usage, fetch: this.#fetch },
      signal,
    );
  }

  #quota() {
    return {
      maxFileBytes: this.limits.maxFileBytes,
      maxTotalBytes: this.limits.maxTotalBytes,
      maxEntries: this.limits.maxEntries,
    };
  }

  async #run(
    command: string,
    options: { cwd: string; env: Record<string, string>; signal?: AbortSignal; timeoutMs?: number },
  ) {
    const timeoutMs = Math.min(options.timeoutMs ?? Infinity, this.limits.maxCommandMs);
    if (this.#runCommand) return this.#runElsewhere(this.#runCommand, command, options, timeoutMs);
    const { usage, tmpRoot } = await this.#mount();
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) controller.abort(options.signal.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    this.#running.add(controller);
    try {
      this.#fetch ??= createVirtualFetch(this.#network);
      const spec = {
        volumeDir: this.volumeDir,
        tmpDir: tmpRoot,
        ...(this.#skillsDir ? { skillsDir: this.#skillsDir } : {}),
        command,
        cwd: options.cwd,
        env: { ...this.#env, ...options.env, ...baseEnv(options.cwd) },
        timeoutMs,
        maxOutputBytes: this.limits.maxOutputBytes,
        quota: this.#quota(),
      };
      const shells = this.#shells ?? sharedShellPool();
      const result = await shells.run(
        spec,
        { session: this.volumeDir, usage, fetch: this.#fetch },
        controller.signal,
      );
      return { ...result, timeoutMs };
    } finally {
      this.#running.delete(controller);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** The bash command runs outside the virtual shell (runCommand), under the same limits. */
  async #runElsewhere(
    runner: CommandRunner,
    command: string,
    options: { cwd: string; env: Record<string, string>; signal?: AbortSignal },
    timeoutMs: number,
  ) {
    this.#assertLive();
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    if (options.signal?.aborted) controller.abort(options.signal.reason);
    options.signal?.addEventListener("abort", onAbort, { once: true });
    this.#running.add(controller);
    try {
      const env = { ...this.#env, ...options.env, ...baseEnv(options.cwd) };
      const cwd = options.cwd;
      const result = await runner(command, { cwd, env, timeoutMs, signal: controller.signal });
      return { ...result, timeoutMs };
    } finally {
      this.#running.delete(controller);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  tools(cwd: string = WORKSPACE_DIR, names?: readonly VirtualToolName[]): AnyToolDefinition[] {
    this.#assertLive();
    return createVirtualTools(this.#backend, confinePath(cwd), names);
  }

  async exec(command: string, options: VirtualExecOptions = {}): Promise<VirtualExecResult> {
    const cwd = confinePath(options.cwd ?? WORKSPACE_DIR);
    const result = await this.#run(command, {
      cwd,
      env: options.env ?? {},
      signal: options.signal,
      timeoutMs: options.timeoutMs,
    });
    return {
      stdout: result.stdout.toString("utf8"),
      stderr: result.stderr.toString("utf8"),
      exitCode: result.exitCode,
      timedOut: result.timedOut,
      aborted: result.aborted,
    };
  }

  setEnv(env: Record<string, string>): void {
    this.#env = { ...env };
  }

  async usage(): Promise<VirtualUsage> {
    const { usage } = await this.#mount();
    const { bytes, entries } = await usage.serialize(async (counter) => ({ ...counter }));
    return {
      bytes,
      entries,
      maxTotalBytes: this.limits.maxTotalBytes,
      maxEntries: this.limits.maxEntries,
    };
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const controller of this.#running) controller.abort(new Error("workspace disposed"));
    this.#running.clear();
    this.#mounted = undefined;
    this.#fetch = undefined;
  }
}

/**
 * A session's sandbox on the `virtual` tier: pi tools over a just-bash virtual shell whose
 * /workspace is the session's volume directory on disk. Nothing is loaded until a tool
 * runs, and files are written straight to disk, so an idle workspace holds almost nothing
 * in memory and survives a pool restart.
 */
export function createVirtualWorkspace(options: VirtualWorkspaceOptions): VirtualWorkspace {
  return new Workspace(options);
}
