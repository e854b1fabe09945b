import { join } from "node:path";
import type { GatewayToWorker, WorkerToGateway } from "@lobu/core";
import { SandboxSession } from "./sandbox-session.ts";
import type { Workspace } from "./workspace.ts";

export interface SessionHostOptions {
  mode: "single" | "pool";
  /** In single mode, the only sandbox this process may serve. */
  sandboxId?: string;
  volumeOf(sandboxId: string): string;
  workspaceFor(sandboxId: string, volumeDir: string): Workspace;
  gatewayUrl: string;
  baseEnv: Record<string, string>;
  send(msg: WorkerToGateway): void;
}

/**
 * Routes control messages to sandbox sessions. One turn at a time per sandbox
 * (the gateway already serializes; this is the second lock), any number of
 * sandboxes in parallel in pool mode.
 */
export class SessionHost {
  private readonly opts: SessionHostOptions;
  private readonly sessions = new Map<string, SandboxSession>();

  constructor(opts: SessionHostOptions) {
    this.opts = opts;
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
      });
      this.sessions.set(sandboxId, s);
    }
    return s;
  }

  get size(): number {
    return this.sessions.size;
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
    switch (msg.t) {
      case "turn": {
        const s = this.session(msg.sandboxId);
        if (s.busy) {
          this.opts.send({
            t: "turn_end",
            sandboxId: msg.sandboxId,
            turnId: msg.turnId,
            status: "error",
            text: "",
            error: { code: "busy", message: "a turn is already running in this sandbox" },
          });
          return;
        }
        s.runTurn(msg.turnId, msg.messageId, msg.text, msg.context).then(
          (outcome) =>
            this.opts.send({
              t: "turn_end",
              sandboxId: msg.sandboxId,
              turnId: msg.turnId,
              ...outcome,
            }),
          (err: Error) =>
            this.opts.send({
              t: "turn_end",
              sandboxId: msg.sandboxId,
              turnId: msg.turnId,
              status: "error",
              text: "",
              error: { code: "worker_error", message: err.message },
            }),
        );
        return;
      }
      case "answer":
        this.sessions.get(msg.sandboxId)?.broker.answer(msg.requestId, msg.answer);
        return;
      case "cancel":
        void this.sessions.get(msg.sandboxId)?.cancel();
        return;
      case "close": {
        const s = this.sessions.get(msg.sandboxId);
        if (s) {
          s.dispose();
          this.sessions.delete(msg.sandboxId);
        }
        this.opts.send({ t: "closed", sandboxId: msg.sandboxId });
        return;
      }
      case "shutdown":
        this.shutdown();
        process.exit(0);
    }
  }

  shutdown(): void {
    for (const s of this.sessions.values()) s.dispose();
    this.sessions.clear();
  }
}
