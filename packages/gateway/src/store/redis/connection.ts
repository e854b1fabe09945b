/** Opening Redis connections with actionable errors, and registering Lua scripts. */
import { errorMessage, LobuError } from "@lobu/core";
import { Redis, type RedisOptions } from "ioredis";
import { log } from "../shared.ts";

/** `redis://user:secret@host` → `redis://user:***@host`, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable Redis URL)";
  }
}

/**
 * Connect and wait until Redis answers. Fails fast with a clear error instead of
 * retrying in the background; once connected, ioredis reconnects on its own.
 */
export async function connectRedis(
  url: string,
  role: string,
  opts: Partial<RedisOptions> = {},
): Promise<Redis> {
  let client: Redis;
  try {
    client = new Redis(url, { lazyConnect: true, connectionName: `lobu-${role}`, ...opts });
  } catch (cause) {
    throw unreachable(url, cause);
  }
  let lastError: unknown;
  const recordError = (err: unknown) => {
    lastError = err;
  };
  client.on("error", recordError);
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw unreachable(url, lastError ?? err);
  }
  client.off("error", recordError);
  // ioredis emits an error per failed reconnect attempt; one line per 10s is enough.
  let lastLogged = 0;
  client.on("error", (err: Error) => {
    const now = Date.now();
    if (now - lastLogged < 10_000) return;
    lastLogged = now;
    log.warn({ err: err.message, redis: redactUrl(url), role }, "redis connection error");
  });
  return client;
}

function unreachable(url: string, cause: unknown): LobuError {
  return new LobuError(
    "store_unreachable",
    `cannot reach Redis at ${redactUrl(url)}: ${errorMessage(cause)}`,
    {
      status: 503,
      hint: "Start Redis (e.g. `redis-server`) or fix store.redis_url / REDIS_URL.",
      cause,
    },
  );
}

/** Close gracefully (pending replies are delivered); fall back to a hard disconnect. */
export async function quit(client: Redis): Promise<void> {
  if (client.status === "end") return;
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}

export type ScriptArg = string | number;
export type Script = (...args: ScriptArg[]) => Promise<unknown>;

/**
 * Register Lua scripts with `defineCommand` (EVALSHA with EVAL fallback) and
 * return typed callers. `keys` is how many leading arguments are KEYS.
 */
export function defineScripts<N extends string>(
  client: Redis,
  namespace: string,
  scripts: Record<N, { keys: number; lua: string }>,
): Record<N, Script> {
  const out = {} as Record<N, Script>;
  const commands = client as unknown as Record<string, Script>;
  for (const name of Object.keys(scripts) as N[]) {
    const { keys, lua } = scripts[name];
    const command = `lobu_${namespace}_${name}`;
    client.defineCommand(command, { numberOfKeys: keys, lua });
    out[name] = (...args) => commands[command]!.apply(client, args);
  }
  return out;
}
