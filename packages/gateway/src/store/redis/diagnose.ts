/**
 * Setup checks of the Redis server behind a store, from one INFO reply: what
 * the adapter needs to work (6.2+, a writable primary, no Cluster) and what
 * keeps acknowledged messages (no eviction, AOF persistence).
 */
import { errorMessage } from "@lobu/core";
import type { Redis } from "ioredis";
import type { StoreIssue } from "../port.ts";

/** Exclusive stream ranges (`XRANGE (id`) arrived in 6.2. */
const MIN_VERSION: readonly [number, number] = [6, 2];

/** `INFO` text as a field map; section headers and blank lines are skipped. */
export function parseInfo(info: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of info.split(/\r?\n/)) {
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** Problems visible in the INFO fields; a field the server does not report is not checked. */
export function issuesFromInfo(info: Map<string, string>): StoreIssue[] {
  const issues: StoreIssue[] = [];
  const version = info.get("redis_version");
  if (version !== undefined) {
    const [major = 0, minor = 0] = version.split(".").map(Number);
    if (major < MIN_VERSION[0] || (major === MIN_VERSION[0] && minor < MIN_VERSION[1])) {
      issues.push({
        level: "fail",
        problem: `Redis ${version} is older than ${MIN_VERSION.join(".")}`,
        fix: `Upgrade Redis to ${MIN_VERSION.join(".")} or newer.`,
      });
    }
  }
  if (info.get("cluster_enabled") === "1") {
    issues.push({
      level: "fail",
      problem: "Redis runs in Cluster mode",
      fix: "Point store.redis_url at a single Redis node: the queue's scripts touch keys across hash slots.",
    });
  }
  if (info.get("role") === "slave") {
    issues.push({
      level: "fail",
      problem: "store.redis_url points at a Redis replica",
      fix: "Point store.redis_url at the primary: writes to a replica fail or are lost.",
    });
  }
  const policy = info.get("maxmemory_policy");
  if (policy !== undefined && policy !== "noeviction") {
    issues.push({
      level: "warn",
      problem: `Redis maxmemory-policy is ${policy}`,
      fix: "Set `maxmemory-policy noeviction` (redis.conf, or CONFIG SET): under memory pressure other policies delete queued messages and leases.",
    });
  }
  if (info.get("aof_enabled") === "0") {
    issues.push({
      level: "warn",
      problem: "Redis appendonly (AOF) is off",
      fix: "Set `appendonly yes` (redis.conf, or CONFIG SET): otherwise a Redis restart loses every write since the last snapshot, acknowledged messages included.",
    });
  }
  return issues;
}

export async function diagnoseRedis(redis: Redis): Promise<StoreIssue[]> {
  let info: string;
  try {
    info = await redis.info();
  } catch (err) {
    return [
      {
        level: "warn",
        problem: `cannot read Redis INFO (${errorMessage(err)}), so its setup was not checked`,
        fix: "Allow INFO for the gateway's Redis user (ACL `+info`).",
      },
    ];
  }
  return issuesFromInfo(parseInfo(info));
}
