import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createLogger, loadConfig } from "@lobu/core";
import { type Gateway, startGateway } from "@lobu/gateway";
import { ConsoleLogSink, logFormat } from "../log-sink.ts";
import { npxLobu } from "./init.ts";

export interface RunOptions {
  config?: string;
  port?: string;
  host?: string;
  dataDir?: string;
  envFile?: string;
}

/**
 * npm (`npx lobu run`, `npm start`) runs the command under `sh -c` and passes a
 * SIGTERM on to that shell only: the shell dies, and the gateway would live on as
 * an orphan with its sandboxes running and their volumes mounted. Under npm, the
 * gateway therefore stops when its parent goes away.
 */
export function onLauncherExit(
  stop: () => void,
  readParent: () => number = () => process.ppid,
  everyMs = 500,
): void {
  const parent = readParent();
  const timer = setInterval(() => {
    if (readParent() === parent) return;
    // Once: a second stop() is the "second signal" that exits at once, cutting
    // the clean shutdown (sandboxes, mounted volumes) short.
    clearInterval(timer);
    stop();
  }, everyMs);
  timer.unref();
}

/** A signal this soon after the first is the same stop request, delivered twice (see stopRequests). */
export const REPEAT_SIGNAL_MS = 2_000;

/**
 * How each stop request (signal, launcher gone) is taken: the first stops the
 * gateway; one within `repeatMs` of it is that request delivered again — a
 * signal sent to the whole process group (systemd's default, `kill -- -pgid`,
 * `pkill`) reaches the gateway directly and once more through npm, which
 * forwards it — and is ignored; a later one exits at once.
 */
export function stopRequests(
  repeatMs = REPEAT_SIGNAL_MS,
  now: () => number = Date.now,
): () => "stop" | "repeat" | "force" {
  let first: number | undefined;
  return () => {
    if (first === undefined) {
      first = now();
      return "stop";
    }
    return now() - first < repeatMs ? "repeat" : "force";
  };
}

export async function runCommand(opts: RunOptions): Promise<number> {
  const envFile = resolve(opts.envFile ?? ".env");
  if (existsSync(envFile)) process.loadEnvFile(envFile);
  else if (opts.envFile) throw new Error(`env file not found: ${envFile}`);
  const { config, path } = loadConfig(opts.config);
  const port = opts.port !== undefined ? Number(opts.port) : undefined;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
    throw new Error(`--port must be a number between 0 and 65535, got "${opts.port}"`);
  }
  // A gateway must not die (leaving its sandboxes behind) because its console went away.
  for (const stream of [process.stdout, process.stderr]) stream.on("error", () => {});
  const logs = new ConsoleLogSink(logFormat(process.env, process.stderr), process.stderr);
  const print = (line: string) => process.stdout.write(`${line}\n`);

  // Signals are handled from the first moment: one during startup abandons the
  // start (closing what it opened); one after stops the gateway; a second one
  // (not the first delivered twice) exits at once.
  const aborter = new AbortController();
  const request = stopRequests();
  let gateway: Gateway | undefined;
  let stopped = () => {};
  const done = new Promise<void>((r) => {
    stopped = r;
  });
  const stop = (why: string) => {
    const kind = request();
    if (kind === "repeat") return;
    if (kind === "force") {
      process.stderr.write("forced exit\n");
      process.exit(130);
    }
    if (!gateway) {
      process.stderr.write(`\n${why}: abandoning the start…\n`);
      aborter.abort(new Error(`stopped by ${why} while starting`));
      return;
    }
    process.stderr.write(
      `\n${why}: stopping (messages in flight stay queued and resume on the next start)…\n`,
    );
    void gateway.close().then(stopped, (err: Error) => {
      process.stderr.write(`shutdown error: ${err.message}\n`);
      stopped();
    });
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  if (process.env.npm_execpath) onLauncherExit(() => stop("npm exited"));

  try {
    gateway = await startGateway({
      config,
      configPath: path,
      // Skills in ./skills load with or without a lobu.toml next to them.
      projectDir: path ? dirname(path) : process.cwd(),
      port,
      host: opts.host,
      dataDir: opts.dataDir,
      log: createLogger("lobu-gateway", { destination: logs }),
      progress: (step) => process.stderr.write(`  … ${step}\n`),
      signal: aborter.signal,
    });
  } catch (err) {
    logs.release();
    if (aborter.signal.aborted) return 0;
    throw err;
  }
  if (aborter.signal.aborted) {
    // The signal came in the last step of the start, after its last check.
    logs.release();
    await gateway.close();
    return 0;
  }
  const s = gateway.summary;
  print(`Lobu gateway listening on ${gateway.url}`);
  print(`  config        ${path ?? "(defaults; no lobu.toml)"}`);
  print(`  data dir      ${s.dataDir}`);
  print(`  store         ${s.store}`);
  print(`  sandbox       ${s.sandbox}`);
  print(
    `  providers     ${s.providers.length ? s.providers.join(", ") : "none configured (set ANTHROPIC_API_KEY or OPENAI_API_KEY)"}`,
  );
  print(`  agents        ${s.agents.join(", ")}`);
  print(`  platforms     ${s.platforms.length ? s.platforms.join(", ") : "REST API only"}`);
  print(`  admin token   ${s.adminTokenFile}`);
  if (s.telemetry)
    print(`  telemetry     ${s.telemetry.replace(/\/v1\/traces$/, "")} (OTLP traces and metrics)`);
  const dataFlag = s.dataDir === resolve(".lobu") ? "" : ` --data-dir ${s.dataDir}`;
  // Outside the folder that installed lobu, a bare `npx lobu` would fetch a registry package.
  print(
    `Try: ${npxLobu(process.cwd())} chat --gateway ${gateway.url}${dataFlag} --message "hello"`,
  );
  // The banner is out: the log lines of the startup follow it, then live ones.
  logs.release();

  await done;
  return 0;
}
