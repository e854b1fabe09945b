import { join } from "node:path";
import type { GatewayToWorker, StdioServerTools, TurnErrorCode, WorkerToGateway } from "@lobu/core";
import { StdioServers } from "./mcp-stdio.ts";
import { type ModelRuntimeSource, SpareModelRuntimes } from "./model-runtimes.ts";
import { SandboxSession, SessionStateError, type TurnOutcome } from "./sandbox-session.ts";
import { GatewayCalls } from "./tools/gateway-tools.ts";
import type { Workspace } from "./workspace.ts";

export interface SessionHostOptions {
  mode: "single" | "pool";
  /**
   * Pool mode: unload a session idle this long (and tell the gateway `closed`),
   * even if the gateway never asks. The gateway's idle timeout normally comes first.
   */
  idleUnloadMs?: number;
  /**
   * Pool mode: let go of a session's pi state (model runtime, tools, the transcript
   * in memory) once it has been idle this long and the pool holds more than
   * `heldStates` of them; the session stays loaded and its next turn rebuilds that
   * state from disk. 0 = keep it until the session unloads.
   */
  releaseIdleMs?: number;
  /**
   * Pool mode: how many sessions may keep their pi state past `releaseIdleMs` (the
   * most recently active; ~160 KB each). Default 0: every idle one lets go.
   */
  heldStates?: number;
  /** Pool mode: idle this long, a session lets go of its pi state whatever the count. */
  holdMaxMs?: number;
  /** In single mode, the only sandbox this process may serve. */
  sandboxId?: string;
  volumeOf(sandboxId: string): string;
  workspaceFor(sandboxId: string, volumeDir: string): Workspace;
  gatewayUrl: string;
  baseEnv: Record<string, string>;
  send(msg: WorkerToGateway): void;
}

const NO_PROGRAMS =
  "stdio MCP servers cannot run here: this sandbox is in the virtual tier, which runs no programs (use the process sandbox driver)";

/** Sandbox ids name volume directories in pool mode: nothing that could walk out of the root. */
const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Routes control messages to sandbox sessions. One turn at a time per sandbox
 * (the gateway already serializes; this is the second lock), any number of
 * sandboxes in parallel in pool mode.
 */
export class SessionHost {
  private readonly opts: SessionHostOptions;
  private readonly sessions = new Map<string, SandboxSession>();
  private readonly sweeper: NodeJS.Timeout | undefined;
  private readonly releaser: NodeJS.Timeout | undefined;
  private readonly gatewayCalls: GatewayCalls;
  /** Each sandbox's stdio MCP servers (single mode: they run as children inside the sandbox). */
  private readonly stdio = new Map<string, StdioServers>();
  /** Pool mode: a pi model runtime made ahead for the next session to wake. */
  private readonly modelRuntimes: ModelRuntimeSource | undefined;

  constructor(opts: SessionHostOptions) {
    this.opts = opts;
    this.gatewayCalls = new GatewayCalls((msg) => opts.send(msg));
    if (opts.mode === "pool") this.modelRuntimes = new SpareModelRuntimes();
    const idle = opts.mode === "pool" ? (opts.idleUnloadMs ?? 0) : 0;
    if (idle > 0) {
      this.sweeper = setInterval(() => this.unloadIdle(idle), Math.min(idle, 60_000));
      this.sweeper.unref();
    }
    const release = opts.mode === "pool" ? (opts.releaseIdleMs ?? 0) : 0;
    if (release > 0) {
      this.releaser = setInterval(
        () => this.releaseOverBudget(),
        Math.max(1000, Math.min(release / 2, 30_000)),
      );
      this.releaser.unref();
    }
  }

  /** Let go of the pi state of sessions idle for `idleMs` (rebuilt from disk on their next turn). */
  releaseIdle(idleMs: number): number {
    const cutoff = Date.now() - idleMs;
    let released = 0;
    for (const s of this.sessions.values()) if (s.lastActive <= cutoff && s.release()) released++;
    return released;
  }

  /**
   * The pool's periodic release: sessions idle `releaseIdleMs` let go of their pi
   * state, least recently active first, until at most `heldStates` hold one; those
   * idle `holdMaxMs` let go in any case. People who write again within a minute or so
   * (most of a conversation) then find their state held, while the memory it takes
   * stays bounded and an idle pool holds none.
   */
  releaseOverBudget(now = Date.now()): number {
    const { releaseIdleMs = 0, heldStates = 0, holdMaxMs = Number.POSITIVE_INFINITY } = this.opts;
    const holding = [...this.sessions.values()].filter((s) => s.holdsState);
    let over = holding.length - heldStates;
    let released = 0;
    for (const s of holding.sort((a, b) => a.lastActive - b.lastActive)) {
      const idle = now - s.lastActive;
      // Sorted: every session after this one was active more recently still.
      if (idle < releaseIdleMs || (over <= 0 && idle < holdMaxMs)) break;
      if (s.release()) {
        released++;
        over--;
      }
    }
    return released;
  }

  /** Drop sessions nobody used for `idleMs`; their state stays on disk for the next turn. */
  unloadIdle(idleMs: number): number {
    const cutoff = Date.now() - idleMs;
    let unloaded = 0;
    for (const [sandboxId, s] of this.sessions) {
      if (s.busy || s.lastActive > cutoff) continue;
      s.dispose();
      this.sessions.delete(sandboxId);
      this.opts.send({ t: "closed", sandboxId });
      unloaded++;
    }
    return unloaded;
  }

  private session(sandboxId: string): SandboxSession {
    let s = this.sessions.get(sandboxId);
    if (!s) {
      const volumeDir = this.opts.volumeOf(sandboxId);
      s = new SandboxSession({
        sandboxId,
        stateDir: join(volumeDir, ".lobu"),
        workspace: this.opts.workspaceFor(sandboxId, volumeDir),
        gatewayUrl: this.opts.gatewayUrl,
        baseEnv: this.opts.baseEnv,
        emit: (turnId, event) => this.opts.send({ t: "event", sandboxId, turnId, event }),
        callGateway: (turnId, tool, input, signal, traceparent) =>
          this.gatewayCalls.call(sandboxId, turnId, tool, input, signal, traceparent),
        ...(this.modelRuntimes ? { modelRuntimes: this.modelRuntimes } : {}),
      });
      this.sessions.set(sandboxId, s);
    }
    return s;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Whether a loaded sandbox's session holds pi's state now (see releaseOverBudget). */
  holdsState(sandboxId: string): boolean {
    return this.sessions.get(sandboxId)?.holdsState ?? false;
  }

  handle(msg: GatewayToWorker): void {
    if (
      "sandboxId" in msg &&
      this.opts.mode === "single" &&
      this.opts.sandboxId &&
      msg.sandboxId !== this.opts.sandboxId
    ) {
      this.opts.send({
        t: "log",
        level: "error",
        msg: `refusing message for foreign sandbox ${msg.sandboxId}`,
      });
      return;
    }
    if ("sandboxId" in msg && !SANDBOX_ID.test(msg.sandboxId)) {
      this.opts.send({
        t: "log",
        level: "error",
        msg: `refusing message for invalid sandbox id ${JSON.stringify(msg.sandboxId.slice(0, 140))}`,
      });
      return;
    }
    switch (msg.t) {
      case "turn": {
        const end = (outcome: TurnOutcome) =>
          this.opts.send({
            t: "turn_end",
            sandboxId: msg.sandboxId,
            turnId: msg.turnId,
            ...outcome,
          });
        const fail = (code: TurnErrorCode, message: string) =>
          end({ status: "error", text: "", error: { code, message } });
        let s: SandboxSession;
        try {
          s = this.session(msg.sandboxId);
        } catch (err) {
          // The sandbox's own state (in its volume) is unusable: say so, the gateway repairs it.
          fail("state_corrupt", (err as Error).message);
          return;
        }
        if (s.busy) {
          fail("busy", "a turn is already running in this sandbox");
          return;
        }
        s.runTurn(
          msg.turnId,
          msg.messageId,
          msg.text,
          msg.context,
          msg.images,
          msg.traceparent,
        ).then(end, (err: Error) =>
          fail(err instanceof SessionStateError ? "state_corrupt" : "worker_error", err.message),
        );
        return;
      }
      case "answer":
        this.sessions.get(msg.sandboxId)?.broker.answer(msg.requestId, msg.answer);
        return;
      case "gateway_tool_result":
        this.gatewayCalls.result(msg.sandboxId, msg.callId, msg);
        return;
      case "cancel":
        void this.sessions.get(msg.sandboxId)?.cancel(msg.turnId);
        return;
      case "mcp_stdio_list": {
        const servers = this.stdioOf(msg.sandboxId);
        const reply = (tools: StdioServerTools[]) =>
          this.opts.send({
            t: "mcp_stdio_tools",
            sandboxId: msg.sandboxId,
            requestId: msg.requestId,
            servers: tools,
          });
        if (!servers) {
          reply(msg.servers.map((s) => ({ id: s.id, error: NO_PROGRAMS })));
          return;
        }
        void servers.list(msg.servers).then(reply);
        return;
      }
      case "mcp_stdio_call": {
        const servers = this.stdioOf(msg.sandboxId);
        const reply = (out: { result?: unknown; error?: string }) =>
          this.opts.send({
            t: "mcp_stdio_result",
            sandboxId: msg.sandboxId,
            callId: msg.callId,
            ...out,
          });
        if (!servers) {
          reply({ error: NO_PROGRAMS });
          return;
        }
        void servers.call(msg.callId, msg.server, msg.tool, msg.input, msg.timeoutMs).then(reply);
        return;
      }
      case "mcp_stdio_cancel":
        this.stdio.get(msg.sandboxId)?.cancel(msg.callId);
        return;
      case "close": {
        void this.stdio.get(msg.sandboxId)?.close();
        this.stdio.delete(msg.sandboxId);
        const s = this.sessions.get(msg.sandboxId);
        if (s) {
          s.dispose();
          this.sessions.delete(msg.sandboxId);
          this.gatewayCalls.cancelAll(msg.sandboxId);
        }
        this.opts.send({ t: "closed", sandboxId: msg.sandboxId });
        return;
      }
      case "shutdown":
        this.shutdown();
        process.exit(0);
    }
  }

  /** The sandbox's stdio servers; none in pool mode (virtual sandboxes run no programs). */
  private stdioOf(sandboxId: string): StdioServers | undefined {
    if (this.opts.mode === "pool") return undefined;
    let servers = this.stdio.get(sandboxId);
    if (!servers) {
      servers = new StdioServers({ cwd: this.opts.volumeOf(sandboxId), env: this.opts.baseEnv });
      this.stdio.set(sandboxId, servers);
    }
    return servers;
  }

  shutdown(): void {
    clearInterval(this.sweeper);
    clearInterval(this.releaser);
    this.modelRuntimes?.dispose();
    for (const servers of this.stdio.values()) void servers.close();
    this.stdio.clear();
    for (const s of this.sessions.values()) s.dispose();
    this.sessions.clear();
  }
}
