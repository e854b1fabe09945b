import { mkdirSync } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import {
  type AgentEvent,
  type ConversationKey,
  describeKey,
  errorMessage,
  type GatewayToWorker,
  isLobuError,
  LobuError,
  type WorkerToGateway,
} from "@lobu/core";
import type { Logger } from "pino";
import type {
  EgressBinder,
  ExecCommand,
  ExecResult,
  ExitInfo,
  SandboxDriver,
  SandboxInstance,
  SandboxLimits,
  SandboxUsage,
  WorkerConnection,
} from "../sandbox/driver.ts";
import { volumeImagePath } from "../sandbox/identity.ts";
import { KeyedQueue } from "../sandbox/keyed-queue.ts";
import { type SnapshotInfo, snapshotTime, VolumeSnapshots } from "../sandbox/snapshots.ts";
import { VOLUME_BUSY, volumeUsage } from "../sandbox/volume.ts";
import type { KeyValue } from "../store/port.ts";
import { classifyTurnEnd } from "./turn-outcome.ts";

export type SandboxState = "starting" | "running" | "stopped";

/** Self-repair bookkeeping of one sandbox (see SandboxManager). */
export interface SandboxHealth {
  /** Abnormal exits (crash, OOM) since the last successful turn. */
  crashes?: number[];
  /** Turns that failed inside the worker, in a row. */
  failures?: number;
  /** Starts that failed, in a row. */
  startFailures?: number;
  /** The sandbox must be repaired before it runs again (`reason` is shown to its user). */
  broken?: { reason: string; at: number; detail?: string };
  /** Snapshot the last repair restored, until a turn succeeds on it. */
  restored?: string;
}

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
  health?: SandboxHealth;
  /** Told to the user at the start of the next turn (repairs, resets). */
  pendingNotice?: string;
  lastSnapshotAt?: number;
  lastRepair?: { at: number; reason: string; detail?: string; snapshot: string | null; by: string };
}

export interface SandboxStatus extends SandboxRecord {
  state: SandboxState;
  busy: boolean;
  usage?: SandboxUsage;
  /** Gateway instance holding it (multi-gateway deployments). */
  owner?: string;
  /** Worker process id while running (the pool process for virtual sandboxes). */
  pid?: number;
  snapshots?: { count: number; lastAt?: number };
}

export interface ResetResult {
  id: string;
  /** Whether it was running (and was stopped first). */
  stopped: boolean;
  wiped: boolean;
  /** The snapshot restored (absent when wiped). */
  snapshot?: { name: string; at: number };
}

interface Live {
  instance: SandboxInstance;
  busy: number;
  idleTimer?: NodeJS.Timeout;
  /** A notice still to put into the next turn. */
  notice?: string;
  /** A turn succeeded since the last snapshot was considered. */
  succeeded: boolean;
  /** Must not run another turn: repair first. */
  broken: boolean;
  off: () => void;
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
  /** Audit sink for automatic repairs. */
  audit?: (entry: {
    action: string;
    actor: string;
    sandboxId: string;
    agentId?: string;
    details?: Record<string, unknown>;
  }) => void;
}

const recordKey = (id: string) => `sandbox:${id}`;
/** At most one snapshot per sandbox this often, taken after a successful turn. */
const SNAPSHOT_INTERVAL_MS = 60_000;
/** This many abnormal exits (crash, OOM) within CRASH_WINDOW_MS mark a sandbox broken. */
const CRASH_LIMIT = 2;
const CRASH_WINDOW_MS = 600_000;

/**
 * Starts sandboxes on demand (cold wake), stops them when idle (scale to zero)
 * and keeps a record of each for operators. Concurrent wakes of one sandbox
 * share one start.
 *
 * Self-repair: after a successful turn the volume is snapshotted (at most every
 * SNAPSHOT_INTERVAL_MS). A sandbox is marked broken when its worker crashes or
 * runs out of memory repeatedly, its disk fills up, its state cannot be loaded,
 * its turns keep failing inside the worker, or it fails to start twice; before
 * it runs again its volume is replaced by the newest snapshot not already
 * proven bad (or an empty one), and the user is told in the next turn.
 */
export class SandboxManager {
  private readonly opts: SandboxManagerOptions;
  private readonly live = new Map<string, Live>();
  private readonly starting = new Map<string, Promise<SandboxInstance>>();
  /** Per-sandbox serialization of wake, repair, reset and snapshot. */
  private readonly lifecycle = new KeyedQueue();
  private readonly snapshotting = new Map<string, Promise<unknown>>();
  /** Record changes are read-modify-write: one at a time per sandbox, in order. */
  private readonly recordOps = new KeyedQueue();
  private readonly diskCache = new Map<string, { at: number; bytes?: number }>();
  private readonly snapshots: VolumeSnapshots;
  private closed = false;

  constructor(opts: SandboxManagerOptions) {
    this.opts = opts;
    this.snapshots = new VolumeSnapshots({
      root: join(opts.dataDir, "snapshots"),
      logger: opts.log,
    });
  }

  get driverName(): string {
    return this.opts.driver.name;
  }

  volumeDir(id: string): string {
    return join(this.opts.dataDir, "volumes", id);
  }

  /** The running sandbox, unless it must go through ensure() first (repair, snapshot in progress). */
  get(id: string): SandboxInstance | undefined {
    const live = this.live.get(id);
    if (!live || live.broken || this.snapshotting.has(id)) return undefined;
    return live.instance;
  }

  /** The running sandbox for `id`, started (and repaired first, if broken) when needed. */
  async ensure(id: string, key: ConversationKey): Promise<SandboxInstance> {
    await this.snapshotting.get(id);
    const running = this.live.get(id);
    if (running && !running.broken) return running.instance;
    const pending = this.starting.get(id);
    if (pending) return pending;
    const start = this.lifecycle
      .run(id, () => this.wake(id, key))
      .finally(() => this.starting.delete(id));
    this.starting.set(id, start);
    return start;
  }

  private async wake(id: string, key: ConversationKey): Promise<SandboxInstance> {
    const current = this.live.get(id);
    if (current?.broken) await this.stopLive(id, current, "broken");
    else if (current) return current.instance;
    // Through the record queue: the failure that broke it may still be being written.
    const broken = (await this.recordOps.run(id, () => this.record(id)))?.health?.broken;
    if (broken) await this.repair(id, broken.reason, broken.detail);
    try {
      return await this.start(id, key);
    } catch (err) {
      // Shutting down, or a volume still held elsewhere for a moment: not the sandbox's fault.
      if (this.closed || (isLobuError(err) && err.code === VOLUME_BUSY)) throw err;
      const failures = await this.patchHealth(id, (h) => ({
        ...h,
        startFailures: (h.startFailures ?? 0) + 1,
      }));
      // Twice in a row: the volume may be what stops it (a corrupt disk image...).
      if ((failures?.startFailures ?? 0) < 2) throw err;
      await this.repair(id, "it failed to start twice", errorMessage(err).split("\n")[0]);
      return this.start(id, key);
    }
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
    const raw = await this.opts.driver.start(
      {
        id,
        key,
        volumeDir,
        limits: this.opts.limits,
        env: this.opts.env,
      },
      this.opts.egress,
    );
    if (record.health?.startFailures)
      await this.patchHealth(id, (h) => ({ ...h, startFailures: 0 }));
    const live: Live = {
      instance: raw,
      busy: 0,
      notice: record.pendingNotice,
      succeeded: false,
      broken: false,
      off: () => {},
    };
    live.instance = this.managed(id, raw, live);
    live.off = raw.connection.onMessage((msg) => this.observe(id, live, msg));
    this.live.set(id, live);
    this.diskCache.delete(id);
    this.armIdle(id, live);
    raw.exited.then(
      (exit) => this.onExited(id, live, exit),
      (err) =>
        this.onExited(id, live, {
          code: null,
          signal: null,
          reason: `crashed: ${errorMessage(err)}`,
        }),
    );
    return live.instance;
  }

  /**
   * The instance the rest of the gateway sees: the driver's, plus a pending
   * notice put into the next turn's event stream right after the turn is sent.
   */
  private managed(id: string, raw: SandboxInstance, live: Live): SandboxInstance {
    const listeners = new Set<(msg: WorkerToGateway) => void>();
    const connection: WorkerConnection = {
      get pid() {
        return raw.connection.pid;
      },
      send: (msg: GatewayToWorker) => {
        raw.connection.send(msg);
        if (msg.t !== "turn" || !live.notice) return;
        const event: AgentEvent = { type: "notice", level: "warn", text: live.notice };
        live.notice = undefined;
        void this.patchRecord(id, (r) => ({ ...r, pendingNotice: undefined })).catch(() => {});
        const note: WorkerToGateway = {
          t: "event",
          sandboxId: id,
          turnId: msg.turnId,
          event,
        };
        for (const listener of [...listeners]) listener(note);
      },
      onMessage: (listener) => {
        listeners.add(listener);
        const off = raw.connection.onMessage(listener);
        return () => {
          listeners.delete(listener);
          off();
        };
      },
    };
    return {
      id: raw.id,
      driver: raw.driver,
      startedAt: raw.startedAt,
      connection,
      exited: raw.exited,
      usage: () => raw.usage(),
    };
  }

  /** Watch turn outcomes: successes clear the health record, some failures mark it broken. */
  private observe(id: string, live: Live, msg: WorkerToGateway): void {
    if (msg.t !== "turn_end" || !("sandboxId" in msg) || msg.sandboxId !== id) return;
    const health = classifyTurnEnd(msg).health;
    if (health?.kind === "healthy") {
      live.succeeded = true;
      void this.patchRecord(id, (r) =>
        r.health ? { ...r, health: undefined, lastActiveAt: Date.now() } : r,
      ).catch(() => {});
      return;
    }
    if (!health) return;
    const { breaks, counts, detail } = health;
    if (breaks) live.broken = true;
    void this.patchHealth(id, (h) => {
      const failures = counts ? (h.failures ?? 0) + 1 : h.failures;
      const why =
        breaks ??
        (failures !== undefined && failures >= 2
          ? `its agent failed ${failures} times in a row`
          : undefined);
      if (!why) return { ...h, failures };
      live.broken = true;
      return { ...h, failures, broken: { reason: why, at: Date.now(), detail } };
    }).catch(() => {});
  }

  private onExited(id: string, live: Live, exit: ExitInfo): void {
    live.off();
    if (this.live.get(id) === live) {
      clearTimeout(live.idleTimer);
      this.live.delete(id);
    }
    this.diskCache.delete(id);
    this.opts.log.info({ sandboxId: id, exit }, "sandbox stopped");
    void this.patchRecord(id, (r) => {
      const next: SandboxRecord = { ...r, lastExit: { ...exit, at: Date.now() } };
      const health: SandboxHealth = { ...r.health };
      if (live.notice) next.pendingNotice = live.notice;
      if (exit.reason === "disk_full") {
        health.broken = { reason: "its disk was full", at: Date.now() };
      } else if (exit.reason === "crashed" || exit.reason === "oom") {
        const now = Date.now();
        const crashes = [...(health.crashes ?? []), now].filter((t) => now - t < CRASH_WINDOW_MS);
        health.crashes = crashes;
        if (crashes.length >= CRASH_LIMIT)
          health.broken = {
            reason:
              exit.reason === "oom"
                ? `it ran out of memory ${crashes.length} times in a row`
                : `its agent crashed ${crashes.length} times in a row`,
            at: now,
            detail: `last exit: ${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`}`,
          };
      } else return next;
      return { ...next, health };
    }).catch(() => {});
  }

  /**
   * Replace a stopped sandbox's volume with its newest good snapshot (an empty
   * volume when none is left), mark it healthy and queue a notice for its user.
   * A snapshot restored by an earlier repair that did not help is marked bad.
   */
  private async repair(
    id: string,
    reason: string,
    detail?: string,
  ): Promise<SnapshotInfo | undefined> {
    const live = this.live.get(id);
    if (live) await this.stopLive(id, live, "repair");
    const record = await this.record(id);
    if (record?.health?.restored)
      await this.snapshots.markBad(id, record.health.restored, `did not help: ${reason}`);
    const restored = await this.snapshots.restore(id, this.volumeDir(id));
    const notice = restored
      ? `Your workspace was restored from the snapshot of ${snapshotTime(restored.at)} because ${reason}.`
      : `Your workspace was reset to an empty one because ${reason}, and no earlier snapshot was left to restore. Your administrator can still recover the old files.`;
    await this.patchRecord(id, (r) => ({
      ...r,
      health: restored ? { restored: restored.name } : undefined,
      pendingNotice: notice,
      lastRepair: {
        at: Date.now(),
        reason,
        ...(detail ? { detail } : {}),
        snapshot: restored?.name ?? null,
        by: "system",
      },
    }));
    this.opts.log.warn(
      { sandboxId: id, reason, detail, snapshot: restored?.name ?? null },
      "sandbox repaired",
    );
    this.opts.audit?.({
      action: "sandbox.repaired",
      actor: "system",
      sandboxId: id,
      agentId: record?.key.agentId,
      details: { reason, detail, snapshot: restored ? snapshotTime(restored.at) : null },
    });
    return restored;
  }

  /**
   * Operator reset: stop the sandbox, then restore its newest good snapshot or,
   * with `wipe`, delete its volume and snapshots. Its user is told in the next turn.
   */
  async reset(id: string, opts: { wipe?: boolean; by?: string } = {}): Promise<ResetResult | null> {
    const record = await this.record(id);
    if (!record) return null;
    return this.lifecycle.run(id, async () => {
      const live = this.live.get(id);
      if (live) await this.stopLive(id, live, "reset");
      const volumeDir = this.volumeDir(id);
      let snapshot: SnapshotInfo | undefined;
      if (opts.wipe) {
        await this.snapshots.wipe(id, volumeDir);
      } else {
        snapshot = await this.snapshots.lastGood(id);
        if (!snapshot)
          throw new LobuError("no_snapshot", `sandbox ${id} has no snapshot to restore`, {
            status: 409,
            hint: `Snapshots are taken after successful turns. To start from an empty workspace instead, run \`lobu sandboxes reset ${id} --wipe\`.`,
          });
        await this.snapshots.restore(id, volumeDir, snapshot);
      }
      const notice = opts.wipe
        ? "Your workspace was wiped by an administrator: you are starting from an empty workspace."
        : `Your workspace was restored by an administrator from the snapshot of ${snapshotTime(snapshot!.at)}.`;
      await this.patchRecord(id, (r) => ({
        ...r,
        health: snapshot ? { restored: snapshot.name } : undefined,
        pendingNotice: notice,
        lastRepair: {
          at: Date.now(),
          reason: opts.wipe ? "wiped by an operator" : "reset by an operator",
          snapshot: snapshot?.name ?? null,
          by: opts.by ?? "operator",
        },
      }));
      this.diskCache.delete(id);
      return {
        id,
        stopped: live !== undefined,
        wiped: Boolean(opts.wipe),
        ...(snapshot ? { snapshot: { name: snapshot.name, at: snapshot.at } } : {}),
      };
    });
  }

  /** Run an operator command inside a running sandbox, as its agent (drivers that can). */
  async exec(
    id: string,
    command: ExecCommand,
    opts: { timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    const { driver } = this.opts;
    if (!driver.exec)
      throw new LobuError(
        "sandbox_exec_unsupported",
        `the ${driver.name} sandbox driver cannot run commands in a sandbox`,
        {
          status: 501,
          hint: 'Only process sandboxes (sandbox.driver = "process") have a shell to run commands in.',
        },
      );
    if (!this.live.has(id))
      throw new LobuError("sandbox_not_running", `sandbox ${id} is not running`, {
        status: 409,
        hint: "It runs while its conversation is active: send it a message, then try again.",
      });
    return driver.exec(id, command, opts);
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
      if (live.busy !== 0) return;
      if (live.broken) {
        // Repaired on its next wake: stop it now rather than let it idle.
        void this.stop(id, "broken").catch(() => {});
        return;
      }
      this.maybeSnapshot(id, live);
      this.armIdle(id, live);
    };
  }

  private maybeSnapshot(id: string, live: Live): void {
    const snapshots = this.snapshots;
    if (!live.succeeded || this.snapshotting.has(id)) return;
    live.succeeded = false;
    const run = this.lifecycle
      .run(id, async () => {
        if (this.live.get(id) !== live || live.busy > 0) return;
        const last = (await this.record(id))?.lastSnapshotAt ?? 0;
        if (Date.now() - last < SNAPSHOT_INTERVAL_MS) return;
        const info = await snapshots.take(id, this.volumeDir(id));
        await this.patchRecord(id, (r) => ({ ...r, lastSnapshotAt: info.at }));
        this.opts.log.debug(
          { sandboxId: id, snapshot: info.name, files: info.files, bytesCopied: info.bytesCopied },
          "volume snapshot taken",
        );
      })
      .catch((err) =>
        this.opts.log.warn({ err: errorMessage(err), sandboxId: id }, "volume snapshot failed"),
      )
      .finally(() => this.snapshotting.delete(id));
    this.snapshotting.set(id, run);
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
    await this.snapshotting.get(id);
    const live = this.live.get(id);
    if (!live) return false;
    await this.stopLive(id, live, reason);
    return true;
  }

  private async stopLive(id: string, live: Live, reason: string): Promise<void> {
    clearTimeout(live.idleTimer);
    await this.opts.driver.stop(id, { reason, graceMs: 3000 });
    await live.instance.exited;
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
    const out: SandboxStatus[] = [];
    // A few at a time: stopped sandboxes are measured on disk.
    for (let i = 0; i < records.length; i += 8)
      out.push(...(await Promise.all(records.slice(i, i + 8).map((r) => this.toStatus(r)))));
    return out;
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
    else {
      const diskBytes = await this.stoppedDisk(record.id);
      usage = diskBytes === undefined ? undefined : { diskBytes };
    }
    const snapshots = await this.snapshots.list(record.id);
    return {
      ...record,
      state,
      busy: (live?.busy ?? 0) > 0,
      usage,
      owner: live ? this.opts.owner : undefined,
      pid: live?.instance.connection.pid,
      snapshots: { count: snapshots.length, lastAt: snapshots[0]?.at },
    };
  }

  /** Disk held by a stopped sandbox: its disk image (blocks in use) or its directory. */
  private async stoppedDisk(id: string): Promise<number | undefined> {
    const cached = this.diskCache.get(id);
    if (cached && Date.now() - cached.at < 30_000) return cached.bytes;
    const dir = this.volumeDir(id);
    const image = await stat(volumeImagePath(dir)).catch(() => undefined);
    const bytes = image
      ? image.blocks * 512
      : await volumeUsage(dir, "watch").catch(() => undefined);
    // An image written to just now may still be settling (a lazily detached mount): measure again next time.
    if (!image || Date.now() - image.mtimeMs > 120_000)
      this.diskCache.set(id, { at: Date.now(), bytes });
    return bytes;
  }

  get runningCount(): number {
    return this.live.size;
  }

  private updateRecord(
    id: string,
    key: ConversationKey,
    change: (r: SandboxRecord) => SandboxRecord,
  ): Promise<SandboxRecord> {
    return this.recordOps.run(id, async () => {
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
    });
  }

  private patchRecord(
    id: string,
    change: (r: SandboxRecord) => SandboxRecord,
  ): Promise<SandboxRecord | undefined> {
    return this.recordOps.run(id, async () => {
      const existing = await this.record(id);
      if (!existing) return undefined;
      const next = change(existing);
      if (next !== existing) await this.opts.kv.set(recordKey(id), JSON.stringify(next));
      return next;
    });
  }

  private async patchHealth(
    id: string,
    change: (h: SandboxHealth) => SandboxHealth,
  ): Promise<SandboxHealth | undefined> {
    return (await this.patchRecord(id, (r) => ({ ...r, health: change({ ...r.health }) })))?.health;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const live of this.live.values()) clearTimeout(live.idleTimer);
    await Promise.all([...this.snapshotting.values()].map((p) => p.catch(() => {})));
    await this.opts.driver.close();
    this.live.clear();
  }
}
