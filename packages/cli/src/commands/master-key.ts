import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type LobuConfig, loadConfig } from "@lobu/core";
import {
  createStore,
  generateMasterKey,
  lockDataDir,
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

/**
 * Re-encrypt every stored secret under a new master key. Resumable: the new key
 * is written to `master.key.next` first, so a crash half-way is finished by
 * running the command again. Gateways must be stopped (they hold the old key):
 * the data dir's lock refuses while one uses it, and keeps one from starting
 * until the rotation is done.
 */
export async function rotateMasterKeyCommand(opts: RotateOptions): Promise<number> {
  const envFile = resolve(opts.envFile ?? ".env");
  if (existsSync(envFile)) process.loadEnvFile(envFile);
  const { config } = loadConfig(opts.config);
  const dataDir = resolve(opts.dataDir ?? process.env.LOBU_DATA_DIR ?? config.gateway.data_dir);
  if (config.store.driver === "sqlite" && !existsSync(join(dataDir, "lobu.db")))
    throw new CliError(
      `no store at ${join(dataDir, "lobu.db")}: nothing to rotate (--data-dir?)`,
      2,
    );
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const lock = lockDataDir(dataDir, "a master-key rotation");
  try {
    return await rotate(dataDir, config);
  } finally {
    lock.release();
  }
}

async function rotate(dataDir: string, config: LobuConfig): Promise<number> {
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
