import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type ConversationKey, describeKey, errorMessage } from "@lobu/core";
import type { Logger } from "pino";
import type {
  EgressBinder,
  ExitInfo,
  SandboxDriver,
  SandboxInstance,
  SandboxLimits,
  SandboxUsage,
} from "../sandbox/driver.ts";
import type { KeyValue } from "../store/port.ts";

export type SandboxState = "starting" | "running" | "stopped" | "failed";

/** What the gateway remembers about a sandbox between runs (stored). */
export interface SandboxRecord {
  id: string;
  key: ConversationKey;
  label: string;
  driver: string;
  createdAt: number;
  lastActiveAt: number;
  lastStartedAt?: number;
  lastExit?: ExitInfo & { at: number };
  starts: number;
}

export interface SandboxStatus extends SandboxRecord {
  state: SandboxState;
  busy: boolean;
  usage?: SandboxUsage;
  /** Gateway instance holding it (multi-gateway deployments). */
  owner?: string;
  /** Worker process id while running (process/host drivers). */
  pid?: number;
}

interface Live {
  instance: SandboxInstance;
  busy: number;
  idleTimer?: NodeJS.Timeout;
}

export interface SandboxManagerOptions {
  driver: SandboxDriver;
  egress: EgressBinder;
  kv: KeyValue;
  dataDir: string;
  limits: SandboxLimits;
  idleTimeoutMs: number;
  env: Record<string, string>;
  log: Logger;
  owner: string;
  /** Called when a sandbox's worker goes away (crash, OOM, idle stop). */
  onExit?: (id: string, exit: ExitInfo) => void;
}

const recordKey = (id: string) => `sandbox:${id}`;

/**
 * Starts sandboxes on demand (cold wake), stops them when idle (scale to zero)
 * and keeps a record of each for operators. Concurrent wakes of one sandbox
 * share one start.
 */
export class SandboxManager {
  private readonly opts: SandboxManagerOptions;
  private readonly live = new Map<string, Live>();
  private readonly starting = new Map<string, Promise<SandboxInstance>>();
  private closed = false;

  constructor(opts: SandboxManagerOptions) {
    this.opts = opts;
  }

  get driverName(): string {
    return this.opts.driver.name;
  }

  volumeDir(id: string): string {
    return join(this.opts.dataDir, "volumes", id);
  }

  get(id: string): SandboxInstance | undefined {
    return this.live.get(id)?.instance;
  }

  /** The running sandbox for `id`, started if needed. */
  async ensure(id: string, key: ConversationKey): Promise<SandboxInstance> {
    const running = this.live.get(id);
    if (running) return running.instance;
    const pending = this.starting.get(id);
    if (pending) return pending;
    const start = this.start(id, key).finally(() => this.starting.delete(id));
    this.starting.set(id, start);
    return start;
  }

  private async start(id: string, key: ConversationKey): Promise<SandboxInstance> {
    if (this.closed) throw new Error("gateway is shutting down");
    const volumeDir = this.volumeDir(id);
    mkdirSync(volumeDir, { recursive: true });
    const record = await this.updateRecord(id, key, (r) => ({
      ...r,
      lastStartedAt: Date.now(),
      starts: r.starts + 1,
    }));
    this.opts.log.info(
      { sandboxId: id, key: record.label, driver: this.opts.driver.name },
      "starting sandbox",
    );
    const instance = await this.opts.driver.start(
      {
        id,
        key,
        volumeDir,
        limits: this.opts.limits,
        env: { ...this.opts.env, LOBU_SANDBOX_ID: id },
      },
      this.opts.egress,
    );
    const live: Live = { instance, busy: 0 };
    this.live.set(id, live);
    this.armIdle(id, live);
    instance.exited.then(
      (exit) => this.onExited(id, instance, exit),
      (err) =>
        this.onExited(id, instance, {
          code: null,
          signal: null,
          reason: `crashed: ${errorMessage(err)}`,
        }),
    );
    return instance;
  }

  private onExited(id: string, instance: SandboxInstance, exit: ExitInfo): void {
    const live = this.live.get(id);
    if (live?.instance === instance) {
      clearTimeout(live.idleTimer);
      this.live.delete(id);
    }
    this.opts.log.info({ sandboxId: id, exit }, "sandbox stopped");
    void this.patchRecord(id, (r) => ({ ...r, lastExit: { ...exit, at: Date.now() } })).catch(
      () => {},
    );
    this.opts.onExit?.(id, exit);
  }

  /** Mark a turn running (no idle stop while busy). Returns the release function. */
  acquire(id: string): () => void {
    const live = this.live.get(id);
    if (!live) return () => {};
    live.busy++;
    clearTimeout(live.idleTimer);
    live.idleTimer = undefined;
    void this.patchRecord(id, (r) => ({ ...r, lastActiveAt: Date.now() })).catch(() => {});
    let released = false;
    return () => {
      if (released) return;
      released = true;
      live.busy--;
      if (live.busy === 0) this.armIdle(id, live);
    };
  }

  private armIdle(id: string, live: Live): void {
    clearTimeout(live.idleTimer);
    if (this.opts.idleTimeoutMs <= 0) return;
    live.idleTimer = setTimeout(() => {
      if (live.busy === 0 && this.live.get(id) === live) {
        void this.stop(id, "idle").catch((err) =>
          this.opts.log.warn({ err, sandboxId: id }, "idle stop failed"),
        );
      }
    }, this.opts.idleTimeoutMs);
    live.idleTimer.unref();
  }

  async stop(id: string, reason = "stopped"): Promise<boolean> {
    const live = this.live.get(id);
    if (!live) return false;
    clearTimeout(live.idleTimer);
    await this.opts.driver.stop(id, { reason, graceMs: 3000 });
    return true;
  }

  async record(id: string): Promise<SandboxRecord | null> {
    const raw = await this.opts.kv.get(recordKey(id));
    return raw ? (JSON.parse(raw) as SandboxRecord) : null;
  }

  async status(id: string): Promise<SandboxStatus | null> {
    const record = await this.record(id);
    if (!record) return null;
    return this.toStatus(record);
  }

  async list(): Promise<SandboxStatus[]> {
    const records = (await this.opts.kv.list("sandbox:")).map(
      (e) => JSON.parse(e.value) as SandboxRecord,
    );
    return Promise.all(records.map((r) => this.toStatus(r)));
  }

  private async toStatus(record: SandboxRecord): Promise<SandboxStatus> {
    const live = this.live.get(record.id);
    const state: SandboxState = live
      ? "running"
      : this.starting.has(record.id)
        ? "starting"
        : "stopped";
    let usage: SandboxUsage | undefined;
    if (live) usage = await live.instance.usage().catch(() => undefined);
    return {
      ...record,
      state,
      busy: (live?.busy ?? 0) > 0,
      usage,
      owner: live ? this.opts.owner : undefined,
      pid: live?.instance.connection.pid,
    };
  }

  get runningCount(): number {
    return this.live.size;
  }

  private async updateRecord(
    id: string,
    key: ConversationKey,
    change: (r: SandboxRecord) => SandboxRecord,
  ): Promise<SandboxRecord> {
    const now = Date.now();
    const existing = await this.record(id);
    const base: SandboxRecord = existing ?? {
      id,
      key,
      label: describeKey(key),
      driver: this.opts.driver.name,
      createdAt: now,
      lastActiveAt: now,
      starts: 0,
    };
    const next = change({ ...base, driver: this.opts.driver.name });
    await this.opts.kv.set(recordKey(id), JSON.stringify(next));
    return next;
  }

  private async patchRecord(
    id: string,
    change: (r: SandboxRecord) => SandboxRecord,
  ): Promise<void> {
    const existing = await this.record(id);
    if (existing) await this.opts.kv.set(recordKey(id), JSON.stringify(change(existing)));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const live of this.live.values()) clearTimeout(live.idleTimer);
    await this.opts.driver.close();
    this.live.clear();
  }
}
