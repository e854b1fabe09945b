import { type ChildProcess, spawn } from "node:child_process";
import { chown, realpath } from "node:fs/promises";
import { constants as osConstants } from "node:os";
import type { Readable, Writable } from "node:stream";
import { errorMessage, type Logger, MAX_TOOL_EXEC_OUTPUT } from "@lobu/core";
import { settled } from "@lobu/core/best-effort";
import type { SandboxCgroup } from "../cgroups.ts";
import { HELPER_ENV } from "../commands.ts";
import type { EgressBinder, EgressBinding, SandboxSpec } from "../driver.ts";
import { readVolumeMeta, type VolumeMeta } from "../identity.ts";
import { commandProxyEntry, type WorkerLauncher } from "../launcher.ts";
import type { Setup } from "./detect.ts";
import { FDS, type LaunchOptions, rlimitArgs, sandboxArgv } from "./launch.ts";

/**
 * The pooled process tier's command sandboxes. Agent loops run in the virtual
 * driver's shared pool processes; every bash command a conversation's agent
 * runs is started here, by the gateway, in a bubblewrap sandbox of that
 * conversation's own: its volume at /workspace and nothing of the others',
 * no network but its own egress socket (its sandbox identity, so its grants),
 * its own cgroup (limits shared by all its commands), seccomp, rlimits, no
 * capabilities. The pool cannot start sandboxes itself (it is inside bwrap,
 * without user namespaces), and should not: it would hold every conversation's
 * egress identity. The gateway starts one per command (bwrap starts in a few
 * ms), so an idle conversation holds no process at all.
 *
 * Commands run as the pools' uid, the owner of the pooled volumes (the pool's
 * file tools write the same files); what separates conversations is that each
 * command sandbox mounts one volume and sees only its own processes.
 */

export interface ToolSandboxDeps {
  /** The host's sandboxing setup (the pools' process driver detects it). */
  setup: () => Promise<Setup>;
  launcher: WorkerLauncher;
  opts: LaunchOptions;
  /** Parent of the pooled volumes: its uid/gid (`<root>.sandbox.json`, out of the pools' sight). */
  volumesRoot: string;
  /** Cgroup name of sandbox `id`'s commands (unique per installation). */
  cgroupName: (id: string) => string;
  log: Logger;
}

export interface ToolCommand {
  callId: string;
  command: string;
  /** Directory to start in (under /workspace; /workspace when it is missing). */
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
}

export interface ToolCommandResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut?: boolean;
  error?: string;
}

/** What a conversation holds while a command of its runs: egress socket and cgroup. */
interface Held {
  binding: EgressBinding;
  cgroup?: SandboxCgroup;
  meta: VolumeMeta;
  volumeDir: string;
}

interface Conversation {
  held: Promise<Held>;
  running: Map<string, ChildProcess>;
  /** Commands between their start and their result (released when it drops to 0). */
  active: number;
}

/** Names the pool may not set for a command: the sandbox's own and the loader's. */
const RESERVED_ENV = /^(PATH|HOME|LOBU_\w*|LD_\w+|PI_OFFLINE)$/;

/** The command line, run by bash in its directory (argv: cwd, command). */
const RUN_SCRIPT = 'cd -- "$1" 2>/dev/null || cd /workspace || exit 1; eval "$2"';

/** The forwarder entry (in the worker package, which every sandbox sees read-only). */
const COMMAND_PROXY = commandProxyEntry();

export class ToolSandboxes {
  readonly #d: ToolSandboxDeps;
  readonly #conversations = new Map<string, Conversation>();
  /** Releases under way: the next hold of the same conversation waits for its cgroup to go. */
  readonly #releasing = new Map<string, Promise<void>>();

  constructor(deps: ToolSandboxDeps) {
    this.#d = deps;
  }

  /** Run `cmd` in a fresh sandbox of `spec`'s conversation. Never throws. */
  async run(spec: SandboxSpec, egress: EgressBinder, cmd: ToolCommand): Promise<ToolCommandResult> {
    let conv = this.#conversations.get(spec.id);
    if (!conv) {
      conv = { held: this.#hold(spec, egress), running: new Map(), active: 0 };
      this.#conversations.set(spec.id, conv);
      const made = conv;
      made.held.catch(() => {
        if (this.#conversations.get(spec.id) === made) this.#conversations.delete(spec.id);
      });
    }
    conv.active++;
    try {
      const setup = await this.#d.setup();
      const held = await conv.held;
      const env: Record<string, string> = {};
      for (const [key, value] of Object.entries(cmd.env))
        if (!RESERVED_ENV.test(key)) env[key] = value;
      const { args, data } = sandboxArgv(
        { setup, launcher: this.#d.launcher, opts: this.#d.opts },
        {
          spec: { ...spec, env },
          resources: { ...held, quota: "watch", pool: false },
          workerArgv: [
            ...rlimitArgs(setup, spec.limits, this.#d.opts.maxOpenFiles),
            // Node first: the own mode's forwarder and proxy variables, for curl, git, pip…
            this.#d.launcher.nodePath,
            COMMAND_PROXY,
            "/bin/bash",
            "-c",
            RUN_SCRIPT,
            "lobu-tool",
            cmd.cwd,
            cmd.command,
          ],
        },
      );
      return await this.#spawn(conv, cmd, setup.shell, args, data);
    } catch (err) {
      this.#d.log.warn({ sandboxId: spec.id, err: errorMessage(err) }, "tool command not started");
      return { exitCode: null, stdout: "", stderr: "", error: errorMessage(err).slice(0, 2000) };
    } finally {
      // Between commands a conversation holds nothing: no cgroup, no egress socket.
      if (--conv.active === 0 && this.#conversations.get(spec.id) === conv)
        void this.release(spec.id);
    }
  }

  async #hold(spec: SandboxSpec, egress: EgressBinder): Promise<Held> {
    await this.#releasing.get(spec.id);
    const setup = await this.#d.setup();
    const meta = await readVolumeMeta(this.#d.volumesRoot);
    if (!meta) throw new Error("the pooled volumes have no owner yet (no pool has started)");
    const volumeDir = await realpath(spec.volumeDir);
    const binding = await egress.bind({ kind: "sandbox", sandboxId: spec.id });
    try {
      if (setup.root) await chown(binding.socketPath, meta.uid, meta.gid);
      const cgroup = setup.cgroups
        ? await setup.cgroups.create(this.#d.cgroupName(spec.id), spec.limits)
        : undefined;
      return { binding, cgroup, meta, volumeDir };
    } catch (err) {
      await settled(binding.close());
      throw err;
    }
  }

  #spawn(
    conv: Conversation,
    cmd: ToolCommand,
    shell: string,
    args: string[],
    data: Array<string | Buffer>,
  ): Promise<ToolCommandResult> {
    const child = spawn(shell, args, {
      stdio: ["ignore", "pipe", "pipe", "ignore", "pipe", ...data.map(() => "pipe" as const)],
      env: HELPER_ENV,
      cwd: "/",
      // Its own process group: a timeout or a cancel kills the whole chain at once.
      detached: true,
    });
    conv.running.set(cmd.callId, child);
    // A sandbox killed early leaves its end of these socket pairs unread: that is no error here.
    for (const stream of child.stdio) stream?.on("error", () => {});
    data.forEach((content, i) => {
      (child.stdio[FDS.firstData + i] as Writable | null)?.end(content);
    });
    (child.stdio[FDS.info] as Readable | null)?.resume();
    const out = { stdout: "", stderr: "" };
    const collect = (key: "stdout" | "stderr") => (chunk: string) => {
      if (out[key].length < MAX_TOOL_EXEC_OUTPUT)
        out[key] += chunk.slice(0, MAX_TOOL_EXEC_OUTPUT - out[key].length);
    };
    // (Decoded as a stream: a character split between two reads stays whole.)
    child.stdout?.setEncoding("utf8").on("data", collect("stdout"));
    child.stderr?.setEncoding("utf8").on("data", collect("stderr"));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, cmd.timeoutMs);
    return new Promise((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null, error?: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        conv.running.delete(cmd.callId);
        // Like a shell: a command ended by signal N exits with 128+N.
        const exitCode = code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : null);
        resolve({
          exitCode: timedOut ? null : exitCode,
          ...out,
          ...(timedOut ? { timedOut } : {}),
          ...(error ? { error } : {}),
        });
      };
      child.on("error", (err) => finish(null, null, err.message));
      // A background process the command left running dies with its sandbox (bwrap's
      // pid namespace ends with the command); give the pipes a moment, then stop reading.
      child.on("exit", (code, signal) =>
        setTimeout(() => {
          child.stdout?.destroy();
          child.stderr?.destroy();
          finish(code, signal);
        }, 100).unref(),
      );
      child.on("close", (code, signal) => finish(code, signal));
    });
  }

  /** Stop a running command of sandbox `id` (its turn was cancelled). */
  cancel(id: string, callId: string): void {
    const child = this.#conversations.get(id)?.running.get(callId);
    if (child) killGroup(child);
  }

  /**
   * Stop the conversation's commands and give back its socket and cgroup (its
   * last command ended, or its agent left the pool).
   */
  async release(id: string): Promise<void> {
    const conv = this.#conversations.get(id);
    if (!conv) return this.#releasing.get(id);
    this.#conversations.delete(id);
    for (const child of conv.running.values()) killGroup(child);
    const releasing = (async () => {
      const held = await conv.held.catch(() => undefined);
      if (!held) return;
      await settled(held.cgroup?.destroy());
      await settled(held.binding.close());
    })();
    this.#releasing.set(id, releasing);
    await releasing;
    if (this.#releasing.get(id) === releasing) this.#releasing.delete(id);
  }

  /** Conversations with a command running now (for tests and operators). */
  held(): string[] {
    return [...this.#conversations.keys()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.#conversations.keys()].map((id) => this.release(id)));
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    child.kill("SIGKILL");
  }
}
