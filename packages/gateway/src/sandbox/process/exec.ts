import { spawn } from "node:child_process";
import { constants as osConstants } from "node:os";
import { LobuError } from "@lobu/core";
import { SANDBOX_WORKSPACE, wrapperArgv } from "../bwrap.ts";
import { HELPER_ENV } from "../commands.ts";
import type { ExecCommand, ExecResult } from "../driver.ts";
import type { Setup } from "./detect.ts";
import { packageEnv } from "./packages.ts";

/** The running sandbox an operator command enters. */
export interface ExecTarget {
  sandboxId: string;
  /** Host pid of its init (checked alive by the caller). */
  initPid: number;
  uid: number;
  gid: number;
  /** Its cgroups' procs files, joined before entering. */
  procsFiles: string[];
  /** prlimit argv for its limits (see rlimitArgs). */
  rlimits: string[];
  /** Directory of the node binary it runs (first in PATH). */
  nodeDir: string;
  /** It shows Nix packages: their profile goes first on PATH, as for its agent. */
  packages?: boolean;
}

export interface ExecOptions {
  timeoutMs?: number;
  onData?: (chunk: string) => void;
}

/** Collected output stops growing here; onData still sees all of it. */
const OUTPUT_LIMIT = 1024 * 1024;

/** Run an operator command inside a running sandbox, as its agent: its namespaces, uid, limits. */
export async function execInSandbox(
  setup: Setup,
  target: ExecTarget,
  command: ExecCommand,
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const argv = execArgv(setup, target, command);
  return runCollecting(
    setup.shell,
    wrapperArgv(2, target.procsFiles, argv),
    opts.timeoutMs ?? 60_000,
    opts.onData,
  );
}

/**
 * nsenter into the sandbox's namespaces, then (inside) drop privileges, apply
 * its rlimits and run the command in /workspace with a clean environment.
 *
 * bwrap's init (pid 1) and the worker share the sandbox's innermost user
 * namespace; its other namespaces belong to the user namespace above it
 * (--disable-userns nests one). Root may enter them all from outside. A
 * non-root gateway must pass through that parent user namespace, which needs
 * nsenter --user-parent (util-linux ≥ 2.39), then enter the inner one.
 */
export function execArgv(setup: Setup, target: ExecTarget, command: ExecCommand): string[] {
  if (!setup.nsenter || !setup.setpriv)
    throw new LobuError(
      "sandbox_exec_unavailable",
      "nsenter and setpriv (util-linux) are needed for exec",
      {
        status: 500,
        hint: "Install util-linux.",
      },
    );
  const nested = setup.disableUserns && !setup.root;
  if (nested && !setup.nsenterUserParent)
    throw new LobuError(
      "sandbox_exec_unavailable",
      "exec into a sandbox of a non-root gateway needs nsenter --user-parent (util-linux 2.39 or later)",
      { status: 501, hint: "Upgrade util-linux, or run the gateway as root." },
    );
  const path = `${target.nodeDir}:/usr/local/bin:/usr/bin:/bin`;
  const env = Object.entries({
    ...(target.packages ? packageEnv(path) : { PATH: path }),
    HOME: SANDBOX_WORKSPACE,
    LANG: "C.UTF-8",
    LOBU_SANDBOX_ID: target.sandboxId,
  }).map(([k, v]) => `${k}=${v}`);
  const inside = [
    // Inside the sandbox's pid namespace the init is pid 1.
    ...(nested ? ["/usr/bin/nsenter", "--target=1", "--user", "--preserve-credentials", "--"] : []),
    setup.setpriv,
    "--no-new-privs",
    "--pdeathsig=KILL",
    "--",
    ...target.rlimits,
    "/usr/bin/env",
    "-i",
    ...env,
    "/bin/sh",
    "-c",
    // A program and its arguments are exec'd as they are; a command line is the shell's.
    typeof command === "string"
      ? `cd ${SANDBOX_WORKSPACE} || exit 1; eval "$1"`
      : `cd ${SANDBOX_WORKSPACE} || exit 1; exec "$@"`,
    "lobu-exec",
    ...(typeof command === "string" ? [command] : command),
  ];
  return [
    ...(setup.root ? [setup.setpriv, "--clear-groups", "--"] : []),
    setup.nsenter,
    `--target=${target.initPid}`,
    nested ? "--user-parent" : "--user",
    "--mount",
    "--pid",
    "--net",
    "--ipc",
    "--uts",
    "--cgroup",
    // Root becomes the sandbox uid while entering; a non-root gateway already is it.
    ...(setup.root
      ? [`--setuid=${target.uid}`, `--setgid=${target.gid}`]
      : ["--preserve-credentials"]),
    "--",
    ...inside,
  ];
}

/** Run `argv` under `shell`, collecting its output; SIGKILL it after `timeoutMs`. */
async function runCollecting(
  shell: string,
  args: string[],
  timeoutMs: number,
  onData: ((chunk: string) => void) | undefined,
): Promise<ExecResult> {
  const child = spawn(shell, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: HELPER_ENV,
    cwd: "/",
  });
  let output = "";
  const onChunk = (chunk: Buffer) => {
    const text = chunk.toString();
    onData?.(text);
    if (output.length < OUTPUT_LIMIT) output += text.slice(0, OUTPUT_LIMIT - output.length);
  };
  child.stdout.on("data", onChunk);
  child.stderr.on("data", onChunk);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => {
    child.on("error", (err) => {
      output += err.message;
      resolve(null);
    });
    // Like a shell: a command ended by signal N exits with 128+N.
    const finished = (code: number | null, signal: NodeJS.Signals | null) =>
      resolve(code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : null));
    // Background processes the command left behind may hold its output open:
    // wait for the exit, give the streams a moment, then stop reading.
    child.on("exit", (code, signal) =>
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finished(code, signal);
      }, 100),
    );
    child.on("close", (code, signal) => finished(code, signal));
  });
  clearTimeout(timer);
  return { exitCode: timedOut ? null : exitCode, output, ...(timedOut ? { timedOut } : {}) };
}
