import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ignoreGone } from "@lobu/core/best-effort";

/** Repository root (testkit lives at packages/testkit/src/harness). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
export const LOBU_BIN = join(REPO_ROOT, "packages/cli/bin/lobu.js");
/** How long an exited gateway's output pipes are waited for (see `exited`). */
const DRAIN_MS = 2_000;

export interface GatewayProcessOptions {
  /** lobu.toml contents. */
  toml?: string;
  dataDir?: string;
  env?: Record<string, string | undefined>;
  /** Fixed port (default: a free one chosen by the gateway). Restarts reuse the same port. */
  port?: number;
  /** How long to wait for "listening" (ms). */
  startTimeoutMs?: number;
  /** Extra arguments for node itself, before the script (benchmarks: `--cpu-prof`). */
  nodeArgs?: string[];
}

export interface GatewayProcess {
  url: string;
  port: number;
  dataDir: string;
  /** The bootstrap admin token the gateway wrote. */
  token: string;
  readonly child: ChildProcess;
  /** Everything the process printed (stdout and stderr). */
  output(): string;
  /** Send a signal and wait for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start the gateway again on the same data dir and port. */
  restart(): Promise<void>;
  /** Authorized fetch against the API. */
  api(path: string, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

/**
 * Unmount whatever a gateway left mounted under `dir` (loop-mounted volumes of a
 * gateway killed with SIGKILL), detach their loop devices and delete the dir.
 */
export function removeDataDir(dir: string): void {
  const mounts = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync("umount", ["-l", m], { stdio: "ignore" });
  const volumes = join(dir, "volumes");
  let images: string[] = [];
  try {
    images = readdirSync(volumes).filter((f) => f.endsWith(".img"));
  } catch (err) {
    ignoreGone(err); // no volumes dir: the gateway never made a volume
  }
  for (const img of images) {
    const attached =
      spawnSync("losetup", ["-j", join(volumes, img)], { encoding: "utf8" }).stdout ?? "";
    for (const line of attached.split("\n")) {
      const dev = line.split(":")[0];
      if (dev) spawnSync("losetup", ["-d", dev], { stdio: "ignore" });
    }
  }
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * Start a real `lobu run` process (the same command a user runs) on a fresh data
 * dir. Used by end-to-end tests that kill and restart gateways.
 */
export async function startGatewayProcess(
  opts: GatewayProcessOptions = {},
): Promise<GatewayProcess> {
  const ownDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "lobu-e2e-"));
  const configPath = join(dataDir, "lobu.toml");
  writeFileSync(configPath, opts.toml ?? "");
  let port = opts.port ?? 0;
  let child!: ChildProcess;
  let out = "";
  let url = "";

  /** Its output pipes closed: everything it wrote is in `out`. */
  let drained: Promise<void> = Promise.resolve();
  /**
   * Exited, and what it wrote read (a test reads `output()` right after): its
   * output arrives through pipes that can lag behind the exit. At most
   * DRAIN_MS for them, since a process it left behind may hold them open.
   */
  const exited = async () => {
    await new Promise<void>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) r();
      else child.once("exit", () => r());
    });
    await new Promise<void>((r) => {
      const timer = setTimeout(r, DRAIN_MS);
      void drained.then(() => {
        clearTimeout(timer);
        r();
      });
    });
  };

  const launch = async () => {
    out = "";
    url = "";
    child = spawn(
      process.execPath,
      [
        ...(opts.nodeArgs ?? []),
        LOBU_BIN,
        "run",
        "--config",
        configPath,
        "--data-dir",
        dataDir,
        "--port",
        String(port),
      ],
      {
        cwd: dataDir,
        env: { ...process.env, LOBU_LOG_LEVEL: process.env.LOBU_LOG_LEVEL ?? "warn", ...opts.env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    drained = new Promise((r) => child.once("close", () => r()));
    const started = new Promise<void>((resolveStart, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`gateway did not start within ${opts.startTimeoutMs ?? 30_000}ms:\n${out}`),
          ),
        opts.startTimeoutMs ?? 30_000,
      );
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m && !url) {
          url = m[1]!;
          clearTimeout(timer);
          resolveStart();
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        if (!url) reject(new Error(`gateway exited (${code ?? signal}) before listening:\n${out}`));
      });
    });
    try {
      await started;
    } catch (err) {
      // A gateway that never came up (e.g. timed out) must not outlive the test.
      child.kill("SIGKILL");
      await exited();
      throw err;
    }
    port = Number(new URL(url).port);
  };
  const keepData = () => !ownDir || Boolean(process.env.LOBU_KEEP_TEST_DATA);
  try {
    await launch();
  } catch (err) {
    // Nobody holds a handle to clean up after a failed first start.
    if (!keepData()) removeDataDir(dataDir);
    throw err;
  }

  const handle: GatewayProcess = {
    get url() {
      return url;
    },
    get port() {
      return port;
    },
    dataDir,
    get token() {
      return readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    },
    get child() {
      return child;
    },
    output: () => out,
    async kill(signal = "SIGKILL") {
      child.kill(signal);
      await exited();
    },
    async restart() {
      if (child.exitCode === null && child.signalCode === null) await handle.kill("SIGTERM");
      await launch();
    },
    api(path, init = {}) {
      // Headers of any form (object, array, Headers) override the defaults.
      const headers = new Headers(init.headers);
      if (!headers.has("authorization")) headers.set("authorization", `Bearer ${handle.token}`);
      if (!headers.has("content-type")) headers.set("content-type", "application/json");
      return fetch(`${url}${path}`, { ...init, headers });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited();
        clearTimeout(timer);
      }
      // Temp data dirs go away with their gateway (LOBU_KEEP_TEST_DATA=1 keeps them for debugging).
      if (!keepData()) removeDataDir(dataDir);
    },
  };
  return handle;
}
