import { resolve } from "node:path";
import { type LobuConfig, LobuError } from "@lobu/core";
import type { Logger } from "pino";
import type { AccountOf } from "../domain/accounts.ts";
import { accountResolver } from "../people/accounts.ts";
import { resolveMasterKey } from "../secrets/master-key.ts";
import { PlaceholderRegistry } from "../secrets/placeholders.ts";
import { SecretStore } from "../secrets/store.ts";
import { createStore } from "../store/index.ts";
import type { Store } from "../store/port.ts";
import type { Startup } from "./startup.ts";

/** Phase 1: where everything durable lives. */
export interface Storage {
  store: Store;
  secrets: SecretStore;
  /** Placeholders issued to sandboxes (revoked when a sandbox is reset). */
  placeholders: PlaceholderRegistry;
  /** Identity → account (people/accounts.ts): what per-person data is kept under. */
  accountOf: AccountOf;
}

/** Open the store (SQLite in the data dir, or Redis) and the encrypted secret store on it. */
export async function openStorage(opts: {
  config: LobuConfig;
  env: NodeJS.ProcessEnv;
  dataDir: string;
  log: Logger;
  startup: Startup;
}): Promise<Storage> {
  const { config, env, dataDir, log, startup } = opts;
  startup.progress(`opening ${config.store.driver} store`);
  let store: Store;
  if (config.store.driver === "redis") {
    const url = config.store.redis_url ?? env.REDIS_URL;
    if (!url) {
      throw new LobuError("config_invalid", 'store.driver is "redis" but no Redis URL is set', {
        hint: "Set store.redis_url in lobu.toml (e.g. redis://127.0.0.1:6379) or REDIS_URL.",
      });
    }
    store = await createStore({ driver: "redis", url, prefix: config.store.key_prefix });
    startup.onFailure(() => store.close());
  } else {
    store = await createStore({ driver: "sqlite", path: resolve(dataDir, "lobu.db") });
    startup.onFailure(() => store.close());
    // One gateway owns an SQLite file: leases left by a previous run are stale.
    const released = await store.queue.releaseAllLeases();
    if (released > 0)
      log.info({ released }, "resuming messages that were in flight when the gateway stopped");
  }
  const master = resolveMasterKey({ dataDir, env });
  const accountOf = accountResolver(store.kv);
  const secrets = new SecretStore(store.kv, master.key, { log, accountOf });
  await secrets.verifyMasterKey();
  return {
    store,
    secrets,
    placeholders: new PlaceholderRegistry(store.kv, { log }),
    accountOf,
  };
}
