import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { loadConfig } from "@lobu/core";
import { startGateway } from "@lobu/gateway";

export interface RunOptions {
  config?: string;
  port?: string;
  host?: string;
  dataDir?: string;
  envFile?: string;
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
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const gateway = await startGateway({
    config,
    configPath: path,
    port,
    host: opts.host,
    dataDir: opts.dataDir,
    progress: (step) => process.stderr.write(`  … ${step}\n`),
  });
  const s = gateway.summary;
  log(`Lobu gateway listening on ${gateway.url}`);
  log(`  config        ${path ?? "(defaults; no lobu.toml)"}`);
  log(`  data dir      ${s.dataDir}`);
  log(`  store         ${s.store}`);
  log(`  sandbox       ${s.sandbox}`);
  log(
    `  providers     ${s.providers.length ? s.providers.join(", ") : "none configured (set ANTHROPIC_API_KEY or OPENAI_API_KEY)"}`,
  );
  log(`  agents        ${s.agents.join(", ")}`);
  log(`  platforms     ${s.platforms.length ? s.platforms.join(", ") : "REST API only"}`);
  log(`  admin token   ${s.adminTokenFile}`);
  if (s.telemetry) log(`  traces        ${s.telemetry}`);
  const dataFlag = s.dataDir === resolve(".lobu") ? "" : ` --data-dir ${s.dataDir}`;
  log(`Try: npx lobu chat --gateway ${gateway.url}${dataFlag} --message "hello"`);

  await new Promise<void>((done) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        process.stderr.write("forced exit\n");
        process.exit(130);
      }
      stopping = true;
      process.stderr.write(
        `\n${signal}: stopping (messages in flight stay queued and resume on the next start)…\n`,
      );
      gateway.close().then(done, (err: Error) => {
        process.stderr.write(`shutdown error: ${err.message}\n`);
        done();
      });
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
  });
  return 0;
}
