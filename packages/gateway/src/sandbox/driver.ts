import type { ConversationKey, GatewayToWorker, WorkerToGateway } from "@lobu/core";
import { z } from "zod";

/**
 * Sandbox drivers plug deployment targets into the gateway. A driver turns a
 * SandboxSpec into a running worker that speaks the control protocol
 * (packages/core/src/protocol/worker.ts) and whose only way out is the egress
 * socket the gateway hands it.
 */

export interface SandboxLimits {
  memoryMb: number;
  cpus: number;
  pids: number;
  diskMb: number;
}

export interface SandboxSpec {
  id: string;
  key: ConversationKey;
  /** Host path of the persistent volume; exists before start() is called. */
  volumeDir: string;
  limits: SandboxLimits;
  /** Non-secret environment for the worker process (never real credentials). */
  env: Record<string, string>;
  /**
   * Host folder with the files of the sandbox's skills, shown read-only at
   * SANDBOX_SKILLS (`/skills`); its contents change while the sandbox runs.
   */
  skillsDir?: string;
}

/** Who is on the other end of an egress socket. */
export type EgressIdentity =
  /** A socket used by exactly one sandbox: every connection is that sandbox. */
  | { kind: "sandbox"; sandboxId: string }
  /**
   * A socket shared by a pool process hosting many virtual sandboxes: each
   * request names its sandbox in the `x-lobu-sandbox` header, set by the pool's
   * own (trusted) networking code, never by the agent.
   */
  | { kind: "pool"; poolId: string };

export interface EgressBinding {
  /** Host path of the Unix socket the gateway listens on for this identity. */
  socketPath: string;
  close(): Promise<void>;
}

/** Provided by the gateway: opens the egress endpoint for a sandbox or pool. */
export interface EgressBinder {
  bind(identity: EgressIdentity): Promise<EgressBinding>;
}

/** Bidirectional control channel to a worker process. */
export interface WorkerConnection {
  readonly pid: number | undefined;
  send(msg: GatewayToWorker): void;
  onMessage(listener: (msg: WorkerToGateway) => void): () => void;
}

/** How a sandbox's worker ended (kept in its stored SandboxRecord). */
export const ExitInfo = z.object({
  code: z.number().nullable(),
  signal: z.string().nullable(),
  /** Why the driver thinks it ended: `stopped`, `crashed`, `oom`, `disk_full`, `idle`. */
  reason: z.string(),
});
export type ExitInfo = z.infer<typeof ExitInfo>;

export interface SandboxUsage {
  memoryBytes?: number;
  diskBytes?: number;
  pids?: number;
  /**
   * Virtual sandboxes: the pool process they share. `memoryBytes` and `pids`
   * are then the pool's, shared by `sandboxes` sandboxes (a session on its own
   * has no separately measurable memory).
   */
  pool?: { id: string; sandboxes: number };
}

export interface SandboxInstance {
  readonly id: string;
  readonly driver: string;
  readonly startedAt: number;
  /** Messages for this sandbox go here; replies are filtered by sandboxId. */
  readonly connection: WorkerConnection;
  /** Resolves when this sandbox stops serving (process exit or pool eviction). */
  readonly exited: Promise<ExitInfo>;
  usage(): Promise<SandboxUsage>;
}

export interface DriverProbe {
  driver: string;
  /** Whether agents in this driver are isolated from the host and each other. */
  isolated: boolean;
  /** Usable at all on this machine. */
  ok: boolean;
  /** Human-readable findings (what works, what is missing and how to fix it). */
  details: string[];
}

export interface ExecResult {
  /** The command's exit code (128+N when a signal N ended it); null when it did not finish. */
  exitCode: number | null;
  output: string;
  /** It ran out of time and was killed. */
  timedOut?: boolean;
}

/**
 * What an operator runs in a sandbox: a program and its arguments, run as they
 * are (`string[]`, no shell in between), or a command line for `/bin/sh -c`
 * (`string`: pipes, `;`, globs).
 */
export type ExecCommand = string | readonly string[];

/**
 * A driver whose sandboxes' workspace is not the host folder `volumeDir` (a
 * pod's PVC) keeps the two in step, so the gateway's side of a volume works
 * as with the drivers that mount the folder: attachments and skill files are
 * written on the host then pushed in, and snapshots, saves to shared storage
 * and person-data exports read the host copy after a pull.
 */
export interface WorkspaceSync {
  /** Host folder → the running sandbox's workspace: the files at `paths` (relative to it). */
  push(id: string, paths: string[]): Promise<void>;
  /** The running sandbox's workspace → its host folder, replacing the host copy. */
  pull(id: string): Promise<void>;
  /** The sandbox's skills folder (SandboxSpec.skillsDir) → its `/skills`, replacing what was there. */
  pushSkills(id: string): Promise<void>;
}

export interface SandboxDriver {
  readonly name: "process" | "virtual" | "host" | "docker" | "kubernetes";
  probe(): Promise<DriverProbe>;
  start(spec: SandboxSpec, egress: EgressBinder): Promise<SandboxInstance>;
  stop(id: string, opts?: { graceMs?: number; reason?: string }): Promise<void>;
  /** Run an operator command inside a running sandbox (the process, docker and kubernetes drivers can). */
  exec?(
    id: string,
    command: ExecCommand,
    opts?: { timeoutMs?: number; onData?: (chunk: string) => void },
  ): Promise<ExecResult>;
  /**
   * Delete what the driver keeps of a stopped sandbox outside its host volume
   * (the `kubernetes` driver's PVC and NetworkPolicy): called when the
   * sandbox is erased or reset with wipe.
   */
  erase?(id: string): Promise<void>;
  /** Set by drivers whose workspace is not the host folder (the `kubernetes` driver). */
  readonly workspace?: WorkspaceSync;
  /** Stop everything (gateway shutdown). */
  close(): Promise<void>;
}
