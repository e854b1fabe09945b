import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** Environment for helper programs the driver runs as root: never the gateway's own. */
export const HELPER_ENV = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" };

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a helper program to completion, capturing its output (bounded). Never throws for exit codes. */
export function run(
  command: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    const child = spawn(command, args, {
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: opts.env ?? HELPER_ENV,
    });
    const cap = (s: string, chunk: Buffer) => (s.length < 256 * 1024 ? s + chunk.toString() : s);
    child.stdout?.on("data", (c: Buffer) => {
      stdout = cap(stdout, c);
    });
    child.stderr?.on("data", (c: Buffer) => {
      stderr = cap(stderr, c);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, stdout, stderr: stderr + err.message });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Like run() but rejects with the program's stderr when it fails. */
export async function runOk(
  command: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<string> {
  const res = await run(command, args, opts);
  if (res.code !== 0) {
    const why = (res.stderr || res.stdout).trim() || `exit ${res.code ?? res.signal}`;
    throw new Error(`${command} ${args.join(" ")} failed: ${why}`);
  }
  return res.stdout;
}

/** Absolute path of an executable found in PATH (the helper PATH plus the gateway's), if any. */
export function which(name: string): string | undefined {
  if (name.includes("/")) return isExecutable(name) ? name : undefined;
  const dirs = [...HELPER_ENV.PATH.split(delimiter), ...(process.env.PATH ?? "").split(delimiter)];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export const isRoot = (): boolean => process.getuid?.() === 0;
