import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join, resolve } from "node:path";
import { createLogger, type Logger } from "@lobu/core";
import type {
  EgressBinder,
  EgressIdentity,
  SandboxInstance,
  SandboxLimits,
  SandboxSpec,
} from "../../src/sandbox/driver.ts";

export const FIXTURE = resolve(import.meta.dirname, "fixtures/probe-worker.ts");

export const testLogger = (): Logger =>
  createLogger("sandbox-test", {
    level: (process.env.LOBU_LOG_LEVEL as "warn" | undefined) ?? "warn",
  });

/** A scratch directory outside the repository (removed by the returned cleanup). */
export function scratch(prefix = "lobu-sbx-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join("/tmp", prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function makeSpec(
  root: string,
  id: string,
  limits: Partial<SandboxLimits> = {},
  env: Record<string, string> = {},
): SandboxSpec {
  const volumeDir = join(root, "volumes", id);
  mkdirSync(volumeDir, { recursive: true });
  return {
    id,
    key: { agentId: "probe", platform: "test", userId: id, channelId: "c" },
    volumeDir,
    limits: { memoryMb: 256, cpus: 1, pids: 64, diskMb: 64, ...limits },
    env,
  };
}

/**
 * Egress stand-in for tests: one Unix socket per identity that answers every
 * connection with `egress:<sandboxId>:<what it received>`.
 */
export class TestEgress implements EgressBinder {
  readonly binds: EgressIdentity[] = [];
  readonly #dir: string;
  readonly #servers = new Set<Server>();
  constructor(dir: string) {
    this.#dir = dir;
  }
  /** Sockets bound and not closed yet. */
  get open(): number {
    return this.#servers.size;
  }
  async bind(identity: EgressIdentity) {
    this.binds.push(identity);
    const name = identity.kind === "sandbox" ? identity.sandboxId : identity.poolId;
    const socketPath = join(this.#dir, `egress-${name}-${this.binds.length}.sock`);
    const server = createServer((c) => {
      let got = "";
      c.on("data", (d) => {
        got += d.toString();
      });
      c.on("end", () => c.end(`egress:${name}:${got}`));
      c.on("error", () => {});
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
    this.#servers.add(server);
    return {
      socketPath,
      close: async () => {
        this.#servers.delete(server);
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }
  async close() {
    await Promise.all([...this.#servers].map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

const context = {
  agentId: "probe",
  model: {
    provider: "test",
    api: "anthropic-messages" as const,
    id: "probe",
    endpoint: "/__lobu/llm/test",
    apiKey: "placeholder",
    contextWindow: 1000,
    maxTokens: 100,
  },
  systemPrompt: "",
  tools: [],
  toolPolicy: {},
  skills: [],
  env: {},
  requestTimeoutSec: 60,
};

let turns = 0;

/** Ask the attacker fixture to try something; resolves with its JSON report. */
export function probe<T = Record<string, unknown>>(
  sandbox: SandboxInstance,
  command: Record<string, unknown>,
): Promise<T> {
  const turnId = `turn-${++turns}`;
  return new Promise<T>((resolvePromise, reject) => {
    const off = sandbox.connection.onMessage((msg) => {
      if (msg.t === "turn_end" && msg.turnId === turnId) {
        off();
        resolvePromise(JSON.parse(msg.text) as T);
      }
    });
    sandbox.exited.then((info) => {
      off();
      reject(new Error(`sandbox exited during probe ${command.op}: ${JSON.stringify(info)}`));
    });
    sandbox.connection.send({
      t: "turn",
      sandboxId: sandbox.id,
      turnId,
      messageId: `m-${turnId}`,
      text: JSON.stringify(command),
      context,
    });
  });
}

/** Poll until `check` returns a value (no timing assertions: the test timeout bounds it). */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  everyMs = 100,
): Promise<T> {
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
