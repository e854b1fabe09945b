import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadConfig } from "@lobu/core";
import {
  createStore,
  generateMasterKey,
  MASTER_KEY_FILE,
  parseMasterKey,
  resolveMasterKey,
  SecretStore,
} from "@lobu/gateway";
import { CliError } from "../client.ts";

export interface RotateOptions {
  config?: string;
  dataDir?: string;
  envFile?: string;
}

async function gatewayAnswers(host: string, port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://${host.includes(":") ? `[${host}]` : host}:${port}/healthz`, {
      signal: AbortSignal.timeout(1000),
    });
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Re-encrypt every stored secret under a new master key. Resumable: the new key
 * is written to `master.key.next` first, so a crash half-way is finished by
 * running the command again. Gateways must be stopped (they hold the old key).
 */
export async function rotateMasterKeyCommand(opts: RotateOptions): Promise<number> {
  const envFile = resolve(opts.envFile ?? ".env");
  if (existsSync(envFile)) process.loadEnvFile(envFile);
  const { config } = loadConfig(opts.config);
  const dataDir = resolve(opts.dataDir ?? process.env.LOBU_DATA_DIR ?? config.gateway.data_dir);
  if (
    config.gateway.port !== 0 &&
    (await gatewayAnswers(config.gateway.host, config.gateway.port))
  ) {
    throw new CliError(
      `a gateway is running at ${config.gateway.host}:${config.gateway.port}; stop every gateway that uses this store first (they hold the old key)`,
    );
  }
  const current = resolveMasterKey({ dataDir, env: process.env });
  const nextFile = join(dataDir, `${MASTER_KEY_FILE}.next`);
  const resumed = existsSync(nextFile);
  if (!resumed) writeFileSync(nextFile, `${generateMasterKey()}\n`, { mode: 0o600, flag: "wx" });
  const next = parseMasterKey(readFileSync(nextFile, "utf8"), nextFile);

  const store =
    config.store.driver === "redis"
      ? await createStore({
          driver: "redis",
          url: config.store.redis_url ?? process.env.REDIS_URL ?? "",
          prefix: config.store.key_prefix,
        })
      : await createStore({ driver: "sqlite", path: join(dataDir, "lobu.db") });
  try {
    const secrets = new SecretStore(store.kv, current.key);
    process.stderr.write(
      `re-encrypting secrets${resumed ? " (resuming an interrupted rotation)" : ""}…\n`,
    );
    const result = await secrets.reencryptAll(current.key, next);
    process.stderr.write(
      `  ${result.reencrypted} re-encrypted, ${result.alreadyCurrent} already under the new key\n`,
    );
  } finally {
    await store.close();
  }

  if (current.source === "file" && current.path) {
    renameSync(current.path, `${current.path}.previous`);
    renameSync(nextFile, current.path);
    console.log(
      `master key rotated: ${current.path} (the old key is kept in ${current.path}.previous; delete it once you are sure)`,
    );
  } else {
    const encoded = readFileSync(nextFile, "utf8").trim();
    rmSync(nextFile);
    console.log(encoded);
    process.stderr.write(
      "master key rotated: set LOBU_MASTER_KEY to the key above before starting the gateway again\n",
    );
  }
  return 0;
}
