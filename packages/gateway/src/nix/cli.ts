import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { NixSettings } from "./settings.ts";

/** The legacy Nix commands Lobu runs (all in Debian's nix-bin, 2.8 and later). */
export type NixCommand = "nix-build" | "nix-env" | "nix-instantiate" | "nix-store";

export interface NixResult {
  code: number | null;
  stdout: string;
  /** The last lines Nix printed on stderr (build logs included), without colours. */
  tail: string[];
  timedOut: boolean;
}

export interface NixRunOptions {
  timeoutMs?: number;
  /** Each line Nix prints on stderr, as it comes (progress). */
  onLine?: (line: string) => void;
}

/** Lines kept of a command's stderr for error messages. */
const TAIL_LINES = 40;
/** Grace between SIGTERM (Nix stops its builders) and SIGKILL. */
const KILL_GRACE_MS = 5_000;
const DEFAULT_STORE = "/nix/store";
const DEFAULT_STATE = "/nix/var/nix";

/**
 * What of the gateway's environment Nix sees. Never the rest: the gateway's
 * environment holds provider keys, and fixed-output builds pass proxy
 * variables on to fetchers.
 */
const PASSED_ENV =
  /^(PATH|HOME|TMPDIR|LANG|LC_ALL|USER|NIX_PATH|NIX_REMOTE|NIX_CONF_DIR|NIX_USER_CONF_FILES|NIX_SSL_CERT_FILE|SSL_CERT_FILE|CURL_CA_BUNDLE|XDG_CACHE_HOME|XDG_CONFIG_HOME|(http|https|ftp|all|no)_proxy|(HTTP|HTTPS|FTP|ALL|NO)_PROXY)$/;

/** Where `name` is on PATH, if anywhere. */
export function findOnPath(name: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not there, or not executable: look in the next folder.
    }
  }
  return undefined;
}

/** Whether the host has a `nixbld` group (the build users of a multi-user Nix install). */
function hasBuildUsers(): boolean {
  try {
    return /^nixbld:/m.test(readFileSync("/etc/group", "utf8"));
  } catch {
    return false;
  }
}

/**
 * Runs Nix's commands with the settings of `[packages]`: the store and state
 * directories, the substituters and their keys, and extra nix.conf options,
 * passed as `--option` so they do not depend on /etc/nix/nix.conf. As root
 * without a `nixbld` group (Debian's nix-bin without nix-setup-systemd),
 * builds run without build users (`build-users-group =`).
 */
export class NixCli {
  readonly settings: Pick<
    NixSettings,
    "storeDir" | "stateDir" | "substituters" | "trustedPublicKeys" | "options"
  >;
  readonly binDir: string | undefined;
  readonly #env: Record<string, string>;

  constructor(settings: NixCli["settings"], env: NodeJS.ProcessEnv = process.env) {
    this.settings = settings;
    const build = findOnPath("nix-build", env.PATH);
    this.binDir = build ? build.slice(0, -"/nix-build".length) : undefined;
    this.#env = {};
    for (const [key, value] of Object.entries(env))
      if (value !== undefined && PASSED_ENV.test(key)) this.#env[key] = value;
    if (settings.storeDir !== DEFAULT_STORE) this.#env.NIX_STORE_DIR = settings.storeDir;
    if (settings.stateDir !== DEFAULT_STATE) {
      this.#env.NIX_STATE_DIR = settings.stateDir;
      this.#env.NIX_LOG_DIR = join(settings.stateDir, "log");
    }
  }

  /** `--option` arguments every command gets. */
  optionArgs(): string[] {
    const s = this.settings;
    const options: Record<string, string> = {
      substituters: s.substituters.join(" "),
      "trusted-public-keys": s.trustedPublicKeys.join(" "),
    };
    const root = process.getuid?.() === 0;
    if (root && !hasBuildUsers()) options["build-users-group"] = "";
    Object.assign(options, s.options);
    return Object.entries(options).flatMap(([k, v]) => ["--option", k, v]);
  }

  /** `nix-build --version`'s version, or undefined when Nix is not installed. */
  async version(): Promise<string | undefined> {
    if (!this.binDir) return undefined;
    const res = await this.run("nix-build", ["--version"], { timeoutMs: 20_000, raw: true });
    return /(\d+\.\d+(\.\d+)?)/.exec(res.stdout)?.[1];
  }

  /** Run a Nix command to its end (or the timeout). Never throws for exit codes. */
  run(
    command: NixCommand,
    args: string[],
    opts: NixRunOptions & { raw?: boolean } = {},
  ): Promise<NixResult> {
    const bin = this.binDir ? join(this.binDir, command) : command;
    const argv = opts.raw ? args : [...this.optionArgs(), ...args];
    return new Promise((resolve) => {
      const tail: string[] = [];
      let stdout = "";
      let partial = "";
      let timedOut = false;
      const child = spawn(bin, argv, {
        env: this.#env,
        stdio: ["ignore", "pipe", "pipe"],
        cwd: "/",
      });
      const line = (text: string) => {
        const clean = stripAnsi(text).replace(/\s+$/, "");
        if (!clean.trim()) return;
        tail.push(clean);
        if (tail.length > TAIL_LINES) tail.shift();
        opts.onLine?.(clean);
      };
      child.stdout.on("data", (chunk: Buffer) => {
        if (stdout.length < 4 * 1024 * 1024) stdout += chunk.toString();
      });
      child.stderr.on("data", (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split(/\r?\n|\r/);
        partial = lines.pop() ?? "";
        for (const l of lines) line(l);
      });
      let killTimer: NodeJS.Timeout | undefined;
      const timer = opts.timeoutMs
        ? setTimeout(() => {
            timedOut = true;
            // SIGTERM first: Nix then stops its builders (they run in sessions of their own).
            child.kill("SIGTERM");
            killTimer = setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
          }, opts.timeoutMs)
        : undefined;
      child.on("error", (err) => {
        clearTimeout(timer);
        resolve({ code: 127, stdout, tail: [...tail, err.message], timedOut });
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        clearTimeout(killTimer);
        if (partial) line(partial);
        resolve({ code, stdout, tail, timedOut });
      });
    });
  }
}

function stripAnsi(text: string): string {
  return text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "");
}

/** The line of a failed command that says why (`error: …`), else its last line. */
export function errorLine(tail: string[]): string {
  const errors = tail.filter((l) => /^error:/.test(l.trim()));
  return (errors.at(-1) ?? tail.at(-1) ?? "no output").trim();
}
