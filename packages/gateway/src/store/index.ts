/**
 * `createStore` opens the configured adapter of the storage port (see port.ts).
 * The Redis adapter (and ioredis) is only loaded when asked for.
 */
import type { Store } from "./port.ts";
import type { SqliteOptions } from "./sqlite/db.ts";

export type * from "./port.ts";

export type StoreOptions =
  | ({ driver: "sqlite"; path: string } & SqliteOptions)
  | { driver: "redis"; url: string; prefix?: string };

export async function createStore(opts: StoreOptions): Promise<Store> {
  if (opts.driver === "sqlite") {
    const { SqliteStore } = await import("./sqlite/store.ts");
    const { driver: _, path, ...sqlite } = opts;
    return new SqliteStore(path, sqlite);
  }
  const { RedisStore } = await import("./redis/store.ts");
  return RedisStore.connect({ url: opts.url, prefix: opts.prefix });
}
