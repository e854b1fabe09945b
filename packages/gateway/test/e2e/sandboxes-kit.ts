import { spawn } from "node:child_process";
import type { AgentEvent } from "@lobu/core";
import {
  collectEvents,
  type GatewayProcess,
  LOBU_BIN,
  type MockLlm,
  type MockTurn,
  type RecordedRequest,
  startGatewayProcess,
  startMockLlm,
} from "@lobu/testkit";

/**
 * A real `lobu run` with the mock LLM, for the sandbox end-to-end suites
 * (sandboxes-*.test.ts): agents act by scripted bash calls, which run in real
 * sandboxes through the real worker.
 */

export const REAL_KEY = "sk-ant-real-key-sandboxes-0123456789abcdef";

export interface SandboxView {
  id: string;
  key: { userId: string; channelId: string };
  state: string;
  busy: boolean;
  pid?: number;
  starts: number;
  createdAt: number;
  lastExit?: { reason: string };
  usage?: {
    memoryBytes?: number;
    diskBytes?: number;
    pids?: number;
    pool?: { id: string; sandboxes: number };
  };
  snapshots?: { count: number; lastAt?: number };
  health?: Record<string, unknown>;
  lastRepair?: { reason: string; snapshot: string | null; by: string };
}

/** An audit record as the API returns it (the fields these suites look at). */
export interface AuditView {
  action: string;
  actor: string;
  sandboxId?: string;
  details?: { host?: string; reason?: string; [key: string]: unknown };
}

export interface World {
  llm: MockLlm;
  gw: GatewayProcess;
  /** Send and stream the reply to the end (done or error). */
  chat(user: string, text: string, channel?: string): Promise<AgentEvent[]>;
  /** Send without waiting (202): the message id. */
  post(user: string, text: string, channel?: string): Promise<string>;
  message(id: string): Promise<{ status: string; startedAt?: number; completedAt?: number }>;
  sandboxes(): Promise<SandboxView[]>;
  sandboxOf(user: string, channel?: string): Promise<SandboxView>;
  cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Audit records of `action` (a prefix matches too), newest first; only `sandboxId`'s if given. */
  audit(action: string, sandboxId?: string): Promise<AuditView[]>;
  close(): Promise<void>;
}

export async function startWorld(opts: {
  driver: "process" | "virtual" | "docker";
  toml?: string;
  env?: Record<string, string | undefined>;
}): Promise<World> {
  const llm = await startMockLlm({ apiKey: REAL_KEY });
  const gw = await startGatewayProcess({
    toml: `[sandbox]\ndriver = "${opts.driver}"\n${opts.toml ?? ""}`,
    env: {
      ANTHROPIC_API_KEY: REAL_KEY,
      ANTHROPIC_BASE_URL: llm.url,
      OPENAI_API_KEY: undefined,
      ...opts.env,
    },
  });
  const world: World = {
    llm,
    gw,
    async chat(user, text, channel = "dev") {
      const res = await gw.api("/api/v1/agents/default/messages", {
        method: "POST",
        headers: { accept: "text/event-stream" },
        body: JSON.stringify({ user, channel, text }),
      });
      return collectEvents(res);
    },
    async post(user, text, channel = "dev") {
      const res = await gw.api("/api/v1/agents/default/messages", {
        method: "POST",
        body: JSON.stringify({ user, channel, text }),
      });
      if (res.status !== 202) throw new Error(`POST message: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { messageId: string }).messageId;
    },
    async message(id) {
      return (await (await gw.api(`/api/v1/messages/${id}`)).json()) as {
        status: string;
        startedAt?: number;
        completedAt?: number;
      };
    },
    async sandboxes() {
      const res = await gw.api("/api/v1/sandboxes");
      return ((await res.json()) as { sandboxes: SandboxView[] }).sandboxes;
    },
    async sandboxOf(user, channel = "dev") {
      const found = (await world.sandboxes()).find(
        (s) => s.key.userId === user && s.key.channelId === channel,
      );
      if (!found) throw new Error(`no sandbox for ${user} in ${channel}`);
      return found;
    },
    cli(args) {
      return new Promise((resolve) => {
        // The connection options go before a `--` (after it, everything is the command's).
        const conn = ["--gateway", gw.url, "--token", gw.token];
        const end = args.includes("--") ? args.indexOf("--") : args.length;
        const child = spawn(
          process.execPath,
          [LOBU_BIN, ...args.slice(0, end), ...conn, ...args.slice(end)],
          { stdio: ["ignore", "pipe", "pipe"] },
        );
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        // "close", not "exit": at "exit" the last output may still be unread in the pipes.
        child.on("close", (code) => resolve({ code, stdout, stderr }));
      });
    },
    async audit(action, sandboxId) {
      const res = await gw.api(`/api/v1/audit?action=${action}&limit=1000`);
      const { records } = (await res.json()) as { records: AuditView[] };
      return sandboxId === undefined ? records : records.filter((r) => r.sandboxId === sandboxId);
    },
    async close() {
      await gw.stop();
      await llm.close();
    },
  };
  return world;
}

/** The model answers `text` by running each command with bash, then says `reply`. */
export function scriptBash(llm: MockLlm, text: string, commands: string[], reply = "ok"): void {
  const turns: MockTurn[] = commands.map((command) => ({
    toolCalls: [{ name: "bash", input: { command } }],
  }));
  llm.when((r) => r.lastUserText === text, ...turns, { text: reply });
}

/** Output of the bash calls the model got back for `text`, in order. */
export function toolOutputs(llm: MockLlm, text: string): string[] {
  return llm.requests
    .filter((r: RecordedRequest) => r.lastUserText === text && r.toolResults.length > 0)
    .flatMap((r) => r.toolResults.map((t) => t.content));
}

/** Poll until `check` returns a value; the test's timeout bounds it (no timing assertions). */
export async function until<T>(check: () => Promise<T | undefined>, everyMs = 100): Promise<T> {
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A model turn that waits until `release()` is called. */
export function gate(): { turn: MockTurn; release: () => void } {
  let release = () => {};
  const opened = new Promise<void>((r) => {
    release = r;
  });
  return {
    turn: async () => {
      await opened;
      return { text: "released" };
    },
    release,
  };
}

export const replyOf = (events: AgentEvent[]): string | undefined => {
  const last = events.at(-1);
  return last?.type === "done" ? last.text : undefined;
};

export const noticesOf = (events: AgentEvent[]): string[] =>
  events.flatMap((e) => (e.type === "notice" ? [e.text] : []));
