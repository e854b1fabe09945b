/**
 * Shared by the sandbox benchmarks: a real `lobu run` with the mock LLM in this
 * process (so its receipt times and our clock agree), and memory of process trees
 * measured from /proc (PSS: shared pages split between the processes sharing them).
 */
import { readFileSync, writeFileSync } from "node:fs";
import {
  collectEvents,
  type GatewayProcess,
  type MockLlm,
  type RecordedRequest,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";
import { descendants, processTable } from "../packages/gateway/src/sandbox/proc.ts";

const KEY = "sk-ant-bench-key-0123456789abcdef";

export interface ListedSandbox {
  id: string;
  key: { userId: string };
  pid?: number;
  state: string;
  usage?: { memoryBytes?: number };
}

export interface BenchGateway {
  gw: GatewayProcess;
  llm: MockLlm;
  /** Send a message; resolves when the 202 arrives, with when it was sent and accepted (ms). */
  post(
    user: string,
    text: string,
  ): Promise<{ messageId: string; sentAt: number; acceptedAt: number }>;
  /** Send and wait for the end of the reply. */
  chat(user: string, text: string): Promise<string>;
  sandboxes(): Promise<ListedSandbox[]>;
  stop(sandboxId: string): Promise<void>;
  close(): Promise<void>;
}

/** e.g. LOBU_BENCH_GATEWAY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the gateways. */
export function benchGatewayNodeArgs(): string[] {
  return process.env.LOBU_BENCH_GATEWAY_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
}

export async function startBenchGateway(
  driver: "process" | "virtual",
  toml: string,
  reply?: (
    req: RecordedRequest,
  ) => { text: string } | { toolCalls: { name: string; input: unknown }[] },
  nodeArgs: string[] = [],
): Promise<BenchGateway> {
  const llm = await startMockLlm({ apiKey: KEY, defaultReply: reply });
  const gw = await startGatewayProcess({
    toml: `[sandbox]\ndriver = "${driver}"\n${toml}`,
    env: {
      ANTHROPIC_API_KEY: KEY,
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: undefined,
      LOBU_LOG_LEVEL: "error",
    },
    startTimeoutMs: 120_000,
    nodeArgs: [...nodeArgs, ...benchGatewayNodeArgs()],
  });
  const api = (path: string, init?: RequestInit) => gw.api(path, init);
  return {
    gw,
    llm,
    async post(user, text) {
      const sentAt = Date.now();
      const res = await api("/api/v1/agents/default/messages", {
        method: "POST",
        body: JSON.stringify({ user, channel: "bench", text }),
      });
      const acceptedAt = Date.now();
      if (res.status !== 202) throw new Error(`message refused: ${res.status} ${await res.text()}`);
      const { messageId } = (await res.json()) as { messageId: string };
      return { messageId, sentAt, acceptedAt };
    },
    async chat(user, text) {
      const send = () =>
        api("/api/v1/agents/default/messages", {
          method: "POST",
          headers: { accept: "text/event-stream" },
          body: JSON.stringify({ user, channel: "bench", text }),
        });
      // A kept-alive connection the gateway closed just as the request went out resets, and
      // fetch never retries a POST: on a loaded machine that ended hour-long runs. Sent again
      // (at worst a person's message twice; a bench counts sessions, not messages).
      const res = await send().catch(async (err) => {
        if ((err as { cause?: { code?: string } }).cause?.code !== "ECONNRESET") throw err;
        return send();
      });
      if (!res.ok) throw new Error(`message refused: ${res.status} ${await res.text()}`);
      const events = await collectEvents(res);
      const last = events.at(-1);
      if (last?.type !== "done") throw new Error(`turn failed: ${JSON.stringify(last)}`);
      return last.text;
    },
    async sandboxes() {
      // Every page (the API lists at most 1,000 at a time).
      const all: ListedSandbox[] = [];
      let cursor: string | undefined;
      do {
        const query = new URLSearchParams({ limit: "1000", ...(cursor ? { cursor } : {}) });
        const page = (await (await api(`/api/v1/sandboxes?${query}`)).json()) as {
          sandboxes: ListedSandbox[];
          next?: string;
        };
        all.push(...page.sandboxes);
        cursor = page.next;
      } while (cursor);
      return all;
    },
    async stop(id) {
      await api(`/api/v1/sandboxes/${id}/stop`, { method: "POST" });
    },
    async close() {
      await gw.stop();
      await llm.close();
      // e.g. LOBU_BENCH_GATEWAY_LOG=/tmp/gw.log to read why a turn failed.
      const logTo = process.env.LOBU_BENCH_GATEWAY_LOG;
      if (logTo) writeFileSync(logTo, gw.output());
    },
  };
}

/** Run `fn` over `items`, at most `limit` at a time. */
export async function inParallel<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

function rollup(pid: number, field: "Pss" | "Rss"): number {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Bytes of memory a set of process trees really holds (PSS), and their summed RSS. */
export async function memoryOf(
  roots: number[],
): Promise<{ pss: number; rss: number; processes: number }> {
  const table = await processTable();
  const pids = [...new Set(roots.flatMap((r) => descendants(table, r).map((e) => e.pid)))];
  return {
    pss: pids.reduce((n, p) => n + rollup(p, "Pss"), 0),
    rss: pids.reduce((n, p) => n + rollup(p, "Rss"), 0),
    processes: pids.length,
  };
}

/** One process alone (not its children: a gateway's children are its pool processes). */
export function ownMemory(pid: number): { pss: number; rss: number } {
  return { pss: rollup(pid, "Pss"), rss: rollup(pid, "Rss") };
}

/** Linux's clock tick for /proc times (USER_HZ: 100 on every mainstream build). */
const TICKS_PER_SECOND = 100;

/** CPU time (user + system, ms) a process has used so far; 0 when it cannot be read. */
function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** CPU used so far (ms) by gateways (their own processes), by their pools (every descendant), and by this process. */
export interface CpuUse {
  gateway: number;
  pools: number;
  bench: number;
}

export async function cpuUse(gatewayPids: number[]): Promise<CpuUse> {
  const table = await processTable();
  const children = gatewayPids.flatMap((root) =>
    descendants(table, root)
      .map((e) => e.pid)
      .filter((pid) => pid !== root),
  );
  const own = process.cpuUsage();
  return {
    gateway: gatewayPids.reduce((n, pid) => n + cpuMsOf(pid), 0),
    pools: [...new Set(children)].reduce((n, pid) => n + cpuMsOf(pid), 0),
    bench: (own.user + own.system) / 1000,
  };
}

/** MemAvailable from /proc/meminfo, in bytes. */
export function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const MiB = 1024 * 1024;
