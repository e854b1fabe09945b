import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type ConversationKey, errorMessage, LobuError, type WorkerToGateway } from "@lobu/core";
import { bestEffort, settled } from "@lobu/core/best-effort";
import type { Logger } from "pino";
import type {
  EgressBinder,
  ExecCommand,
  ExecResult,
  ExitInfo,
  SandboxDriver,
  SandboxInstance,
  SandboxLimits,
} from "../sandbox/driver.ts";
import { KeyedQueue } from "../sandbox/keyed-queue.ts";
import { VolumeSnapshots } from "../sandbox/snapshots.ts";
import type { VolumeBackend } from "../sandbox/volume-backends.ts";
import type { KeyValue } from "../store/port.ts";
import type { Placed, SandboxPlacement } from "./placement.ts";
import type { SandboxCommand, SandboxControl } from "./sandbox-control.ts";
import {
  afterExit,
  afterStartFailure,
  afterTurnFailure,
  startFailureCounts,
  startFailuresBreak,
} from "./sandbox-health.ts";
import { type SandboxRecord, SandboxRecords } from "./sandbox-records.ts";
import {
  type RepairAudit,
  type RestoreDeps,
  repairVolume,
  resetVolume,
} from "./sandbox-restore.ts";
import { SandboxListing, type SandboxStatus, StoppedDisk } from "./sandbox-status.ts";
import { classifyTurnEnd } from "./turn-outcome.ts";

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
  /** The volume's save after the last turn (object storage), waiting for the sandbox to stay quiet. */
  saveTimer?: NodeJS.Timeout;
  off: () => void;
}

export interface SandboxManagerOptions {
  driver: SandboxDriver;
  egress: EgressBinder;
  kv: KeyValue;
  dataDir: string;
  /** Parent of the volumes (default `<dataDir>/volumes`; a shared directory for several gateways). */
  volumesRoot?: string;
  /** Parent of the snapshots (default `<dataDir>/snapshots`). */
  snapshotsRoot?: string;
  /**
   * Several gateways: the sandbox runs only on the gateway holding its
   * placement (runtime/placement.ts); absent on a single gateway.
   */
  placement?: SandboxPlacement;
  /** Several gateways: stop, reset and erase go to the gateway running the sandbox. */
  control?: SandboxControl;
  /**
   * Where volumes live between runs (sandbox/volume-backends.ts); default: the
   * volume directory itself. With object storage a volume is fetched before
   * it starts and saved once it stopped, before another gateway may take it.
   */
  volumes?: VolumeBackend;
  limits: SandboxLimits;
  idleTimeoutMs: number;
  env: Record<string, string>;
  log: Logger;
  owner: string;
  /** Audit sink for automatic repairs. */
  audit?: RepairAudit;
  /** The host folder of the sandbox's skill files (created), shown read-only by its driver. */
  skillsDirFor?: (id: string) => string;
  /** Delete that folder (the sandbox is erased). */
  removeSkillsDir?: (id: string) => void;
}

/**
 * Object storage: the volume is saved this long after a turn ends, unless another turn
 * starts first (a burst of turns is saved once), so a gateway that dies loses at most
 * the turn in flight (which its turn journal rewinds).
 */
const TURN_SAVE_DELAY_MS = 500;

/** At most one snapshot per sandbox this often, taken after a successful turn. */
const SNAPSHOT_INTERVAL_MS = 60_000;

/**
 * Starts sandboxes on demand (cold wake), stops them when idle (scale to zero)
 * and keeps a record of each for operators. Concurrent wakes of one sandbox
 * share one start.
 *
 * Self-repair: after a successful turn the volume is snapshotted (at most every
 * SNAPSHOT_INTERVAL_MS). When the health policy (sandbox-health.ts) marks a
 * sandbox broken, it is stopped and, before it runs again, repaired: its volume
 * is replaced by the newest snapshot not already proven bad (or an empty one),
 * and the user is told in the next turn.
 */
export class SandboxManager {
  private readonly opts: SandboxManagerOptions;
  private readonly live = new Map<string, Live>();
  private readonly starting = new Map<string, Promise<SandboxInstance>>();
  /** Per-sandbox serialization of wake, repair, reset and snapshot. */
  private readonly lifecycle = new KeyedQueue();
  private readonly snapshotting = new Map<string, Promise<unknown>>();
  /** Volumes being saved between turns (object storage): a turn waits for the save. */
  private readonly turnSaves = new Map<string, Promise<unknown>>();
  /** Volumes being saved after their sandbox stopped (waited for by close). */
  private readonly saving = new Set<Promise<void>>();
  private readonly records: SandboxRecords;
  private readonly disk: StoppedDisk;
  private readonly snapshots: VolumeSnapshots;
  private readonly listing: SandboxListing;
  private closed = false;

  constructor(opts: SandboxManagerOptions) {
    this.opts = opts;
    this.records = new SandboxRecords(opts.kv, opts.driver.name, opts.log);
    this.disk = new StoppedDisk((id) => this.volumeDir(id));
    this.snapshots = new VolumeSnapshots({
      root: opts.snapshotsRoot ?? join(opts.dataDir, "snapshots"),
      logger: opts.log,
    });
    this.listing = new SandboxListing({
      records: this.records,
      now: (id) => ({ live: this.live.get(id), starting: this.starting.has(id) }),
      deps: { snapshots: this.snapshots, disk: this.disk, owner: opts.owner },
      ...(opts.placement ? { placement: opts.placement } : {}),
    });
    // Another gateway may run it now: it must not run here too.
    opts.placement?.onLost((id) => {
      void this.stop(id, "placement lost").catch(
        bestEffort(opts.log, "sandbox whose placement was lost not stopped", { sandboxId: id }),
      );
    });
  }

  get driverName(): string {
    return this.opts.driver.name;
  }

  volumeDir(id: string): string {
    return join(this.opts.volumesRoot ?? join(this.opts.dataDir, "volumes"), id);
  }

  /** The running sandbox, unless it must go through ensure() first (repair, snapshot in progress). */
  get(id: string): SandboxInstance | undefined {
    const live = this.live.get(id);
    if (!live || live.broken || this.snapshotting.has(id) || this.turnSaves.has(id))
      return undefined;
    return live.instance;
  }

  /** The running sandbox for `id`, started (and repaired first, if broken) when needed. */
  async ensure(id: string, key: ConversationKey): Promise<SandboxInstance> {
    await this.snapshotting.get(id);
    await this.turnSaves.get(id);
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
    // Settled first: the failure that broke it may still be being written.
    const broken = (await this.records.settled(id))?.health?.broken;
    if (broken) await this.repair(id, broken.reason, broken.detail);
    try {
      return await this.start(id, key);
    } catch (err) {
      // Shutting down is not the sandbox's fault either.
      if (this.closed || !startFailureCounts(err)) throw err;
      const health = await this.records.patchHealth(id, afterStartFailure);
      const repair = startFailuresBreak(health, err);
      if (!repair) throw err;
      await this.repair(id, repair.reason, repair.detail);
      return this.start(id, key);
    }
  }

  private async start(id: string, key: ConversationKey): Promise<SandboxInstance> {
    if (this.closed) throw new Error("gateway is shutting down");
    const placed = await this.place(id);
    try {
      return await this.startPlaced(id, key, placed?.epoch);
    } catch (err) {
      await this.unplace(id);
      throw err;
    }
  }

  /**
   * Hold the sandbox on this gateway while it runs here (several gateways):
   * refused when it runs on another one.
   */
  private async place(id: string): Promise<Placed | undefined> {
    const placement = this.opts.placement;
    if (!placement) return undefined;
    const placed = await placement.acquire(id);
    if (placed) return placed;
    const holder = await placement.holder(id);
    throw new LobuError("sandbox_elsewhere", `sandbox ${id} runs on another gateway`, {
      status: 409,
      hint: `It runs on ${holder ?? "another gateway"}; that gateway serves it until it stops.`,
    });
  }

  private async unplace(id: string): Promise<void> {
    await this.opts.placement?.release(id);
  }

  private async startPlaced(
    id: string,
    key: ConversationKey,
    epoch: number | undefined,
  ): Promise<SandboxInstance> {
    const volumeDir = this.volumeDir(id);
    await this.opts.volumes?.fetch(id, volumeDir);
    mkdirSync(volumeDir, { recursive: true });
    const record = await this.records.update(id, key, (r) => ({
      ...r,
      lastStartedAt: Date.now(),
      starts: r.starts + 1,
      ...(epoch === undefined ? {} : { placement: { gateway: this.opts.owner, epoch } }),
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
        ...(this.opts.skillsDirFor ? { skillsDir: this.opts.skillsDirFor(id) } : {}),
      },
      this.opts.egress,
    );
    if (record.health?.startFailures)
      await this.records.patchHealth(id, (h) => ({ ...h, startFailures: 0 }));
    const live: Live = {
      instance: raw,
      busy: 0,
      notice: record.pendingNotice,
      succeeded: false,
      broken: false,
      off: () => {},
    };
    live.off = raw.connection.onMessage((msg) => this.observe(id, live, msg));
    this.live.set(id, live);
    this.disk.forget(id);
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
   * The notice still to put into the running sandbox's next turn (e.g. "your
   * workspace was restored from a snapshot"), if any: handed out once. The turn
   * runner takes it when it sends a turn and emits it into that turn.
   */
  takeNotice(id: string): string | undefined {
    const live = this.live.get(id);
    const notice = live?.notice;
    if (!live || !notice) return undefined;
    live.notice = undefined;
    void this.records
      .patch(id, (r) => ({ ...r, pendingNotice: undefined }))
      .catch(
        bestEffort(this.opts.log, "sandbox notice not cleared: it may be told again", {
          sandboxId: id,
        }),
      );
    return notice;
  }

  /** Watch turn outcomes: successes clear the health record, some failures mark it broken. */
  private observe(id: string, live: Live, msg: WorkerToGateway): void {
    if (msg.t !== "turn_end" || !("sandboxId" in msg) || msg.sandboxId !== id) return;
    const health = classifyTurnEnd(msg).health;
    if (health?.kind === "healthy") {
      live.succeeded = true;
      // A successful turn clears the health record.
      void this.records
        .patch(id, (r) => (r.health ? { ...r, health: undefined, lastActiveAt: Date.now() } : r))
        .catch(
          bestEffort(this.opts.log, "sandbox health not cleared after a good turn", {
            sandboxId: id,
          }),
        );
      return;
    }
    if (!health) return;
    if (health.breaks) live.broken = true;
    void this.records
      .patchHealth(id, (h) => {
        const next = afterTurnFailure(h, health, Date.now());
        if (next.broken !== h.broken) live.broken = true;
        return next;
      })
      .catch(
        bestEffort(this.opts.log, "failed turn not counted in sandbox health", { sandboxId: id }),
      );
  }

  private onExited(id: string, live: Live, exit: ExitInfo): void {
    live.off();
    // Saved as it stops (below) instead.
    clearTimeout(live.saveTimer);
    if (this.live.get(id) === live) {
      clearTimeout(live.idleTimer);
      this.live.delete(id);
    }
    this.disk.forget(id);
    this.opts.log.info({ sandboxId: id, exit }, "sandbox stopped");
    this.saveAndLetGo(id);
    void this.records
      .patch(id, (r) => {
        const now = Date.now();
        const next: SandboxRecord = { ...r, lastExit: { ...exit, at: now } };
        if (live.notice) next.pendingNotice = live.notice;
        const health = afterExit(r.health, exit, now);
        return health ? { ...next, health } : next;
      })
      .catch(bestEffort(this.opts.log, "sandbox exit not recorded", { sandboxId: id, exit }));
  }

  /**
   * A sandbox stopped here: save its volume where the next gateway finds it
   * (object storage), then let the sandbox go. In the lifecycle queue, so a
   * start here meanwhile is not overwritten and a reset is saved as reset.
   */
  private saveAndLetGo(id: string): void {
    const save = this.lifecycle
      .run(id, () => (this.live.has(id) ? Promise.resolve() : this.save(id)))
      .finally(() => this.unplace(id))
      .catch(bestEffort(this.opts.log, "sandbox not let go", { sandboxId: id }));
    this.saving.add(save);
    void save.finally(() => this.saving.delete(save));
  }

  /**
   * Save the sandbox's volume, stopped or quiet between turns (object storage; a failure
   * is logged by the backend).
   */
  private async save(id: string): Promise<void> {
    const volumes = this.opts.volumes;
    if (volumes?.name !== "s3") return;
    // Fenced: a gateway that lost the sandbox (its lease lapsed, a later epoch took it) must
    // not overwrite what the gateway running it now saves; the backend's conditional write
    // closes the window between this check and the write.
    const placement = this.opts.placement;
    if (placement && !(await placement.current(id).catch(() => false))) {
      this.opts.log.warn(
        { sandboxId: id },
        "volume not saved: the sandbox moved to another gateway",
      );
      return;
    }
    // The backend logs a failed save at error (what was lost, and why); the stop goes on.
    await settled(volumes.persist(id, this.volumeDir(id)));
  }

  /** Stop the sandbox if it runs, then repair its volume (see repairVolume). */
  private async repair(id: string, reason: string, detail?: string): Promise<void> {
    const live = this.live.get(id);
    if (live) await this.stopLive(id, live, "repair");
    await repairVolume(this.restoreDeps(), id, reason, detail);
  }

  private restoreDeps(): RestoreDeps {
    const { log, audit } = this.opts;
    const volumeDir = (id: string) => this.volumeDir(id);
    return { snapshots: this.snapshots, records: this.records, volumeDir, log, audit };
  }

  /**
   * Operator reset: stop the sandbox, then restore its newest good snapshot or,
   * with `wipe`, delete its volume and snapshots. Its user is told in the next turn.
   */
  async reset(id: string, opts: { wipe?: boolean; by?: string } = {}): Promise<ResetResult | null> {
    const record = await this.record(id);
    if (!record) return null;
    const elsewhere = await this.runsElsewhere(id);
    if (elsewhere)
      return (await this.ask(elsewhere, {
        op: "reset",
        id,
        wipe: Boolean(opts.wipe),
        ...(opts.by ? { by: opts.by } : {}),
      })) as ResetResult | null;
    return this.whilePlaced(id, () =>
      this.lifecycle.run(id, async () => {
        const live = this.live.get(id);
        if (live) await this.stopLive(id, live, "reset");
        else await this.opts.volumes?.fetch(id, this.volumeDir(id));
        if (opts.wipe) await this.opts.driver.erase?.(id);
        const snapshot = await resetVolume(this.restoreDeps(), id, opts);
        this.disk.forget(id);
        await this.save(id);
        return {
          id,
          stopped: live !== undefined,
          wiped: Boolean(opts.wipe),
          ...(snapshot ? { snapshot: { name: snapshot.name, at: snapshot.at } } : {}),
        };
      }),
    );
  }

  /** The other gateway running the sandbox, when one does (several gateways). */
  private async runsElsewhere(id: string): Promise<string | undefined> {
    const placement = this.opts.placement;
    if (!placement || !this.opts.control || this.live.has(id)) return undefined;
    const holder = await placement.holder(id);
    return holder && holder !== this.opts.owner ? holder : undefined;
  }

  private ask(gateway: string, command: SandboxCommand): Promise<unknown> {
    if (!this.opts.control) throw new Error("no sandbox control");
    return this.opts.control.ask(gateway, command);
  }

  /**
   * Run `fn` holding the sandbox here (several gateways), so no other gateway
   * starts it meanwhile; refused (sandbox_elsewhere) when another runs it.
   */
  private async whilePlaced<T>(id: string, fn: () => Promise<T>): Promise<T> {
    await this.place(id);
    try {
      return await fn();
    } finally {
      await this.unplace(id);
    }
  }

  /** Carry out another gateway's command for a sandbox running here. */
  serveControl(): Promise<void> {
    return (
      this.opts.control?.serve(async (command) => {
        if (command.op === "stop") return this.stop(command.id, command.reason);
        if (command.op === "reset")
          return this.reset(command.id, {
            wipe: command.wipe,
            ...(command.by ? { by: command.by } : {}),
          });
        return this.destroy(command.id);
      }) ?? Promise.resolve()
    );
  }

  /**
   * Erase the sandbox: stop it if it runs, then delete its volume (disk image
   * included), its snapshots, its skills folder and its record. Null when
   * there is no such sandbox here.
   */
  async destroy(id: string): Promise<{ stopped: boolean } | null> {
    const record = await this.record(id);
    if (!record && !existsSync(this.volumeDir(id))) return null;
    const elsewhere = await this.runsElsewhere(id);
    if (elsewhere)
      return (await this.ask(elsewhere, { op: "destroy", id })) as { stopped: boolean } | null;
    // Outside the lifecycle queue: a snapshot queued there must not wait for us.
    await this.snapshotting.get(id);
    return this.whilePlaced(id, () =>
      this.lifecycle.run(id, async () => {
        const live = this.live.get(id);
        if (live) await this.stopLive(id, live, "erased");
        // What the driver keeps elsewhere (a pod's PVC) goes too.
        await this.opts.driver.erase?.(id);
        await this.snapshots.destroy(id, this.volumeDir(id));
        await this.opts.volumes?.remove(id);
        this.opts.removeSkillsDir?.(id);
        await this.records.delete(id);
        this.disk.forget(id);
        return { stopped: live !== undefined };
      }),
    );
  }

  /**
   * Run `fn` on the sandbox's volume while it is stopped here, keeping it
   * from starting meanwhile (a wake waits): the retention sweep. Undefined
   * when it runs or is starting (nothing is done then).
   */
  async whileStopped<T>(
    id: string,
    fn: (volumeDir: string, snapshots: VolumeSnapshots) => Promise<T>,
  ): Promise<T | undefined> {
    if (this.live.has(id) || this.starting.has(id)) return undefined;
    return this.lifecycle.run(id, async () => {
      if (this.live.has(id) || this.closed) return undefined;
      // Several gateways: held here meanwhile, so no other gateway starts it; skipped when one runs it.
      const placement = this.opts.placement;
      if (placement && !(await placement.acquire(id))) return undefined;
      try {
        // Object storage: the copy here may be older than the saved volume.
        await this.opts.volumes?.fetch(id, this.volumeDir(id));
        const out = await fn(this.volumeDir(id), this.snapshots);
        this.disk.forget(id);
        await this.save(id);
        return out;
      } finally {
        await this.unplace(id);
      }
    });
  }

  /** Run an operator command inside a running sandbox, as its agent (drivers that can). */
  async exec(
    id: string,
    command: ExecCommand,
    opts: { timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    const elsewhere = await this.runsElsewhere(id);
    if (elsewhere)
      throw new LobuError("sandbox_elsewhere", `sandbox ${id} runs on another gateway`, {
        status: 409,
        hint: `Run the command on the gateway running it: ${elsewhere}.`,
      });
    const { driver } = this.opts;
    if (!driver.exec)
      throw new LobuError(
        "sandbox_exec_unsupported",
        `the ${driver.name} sandbox driver cannot run commands in a sandbox`,
        {
          status: 501,
          hint: 'Only process, docker and kubernetes sandboxes (sandbox.driver = "process", "docker" or "kubernetes") have a shell to run commands in.',
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
    // Saved after this turn instead.
    clearTimeout(live.saveTimer);
    live.saveTimer = undefined;
    void this.records
      .patch(id, (r) => ({ ...r, lastActiveAt: Date.now() }))
      .catch(
        bestEffort(
          this.opts.log,
          "last activity not recorded",
          { sandboxId: id },
          { level: "debug" },
        ),
      );
    let released = false;
    return () => {
      if (released) return;
      released = true;
      live.busy--;
      if (live.busy !== 0) return;
      if (live.broken) {
        // Repaired on its next wake: stop it now rather than let it idle.
        void this.stop(id, "broken").catch(
          bestEffort(this.opts.log, "broken sandbox not stopped (repaired at its next wake)", {
            sandboxId: id,
          }),
        );
        return;
      }
      this.maybeSnapshot(id, live);
      this.scheduleTurnSave(id, live);
      this.armIdle(id, live);
    };
  }

  /**
   * Object storage: save the volume once the sandbox stayed quiet for a moment after a
   * turn, so the transcript survives this gateway being killed. Turns wait while it is
   * saved (a consistent archive); the save is fenced like the one at stop.
   */
  private scheduleTurnSave(id: string, live: Live): void {
    // A pod's workspace is copied back to the host folder after each turn too (driver.workspace).
    if (this.opts.volumes?.name !== "s3" && !this.opts.driver.workspace) return;
    clearTimeout(live.saveTimer);
    live.saveTimer = setTimeout(() => {
      live.saveTimer = undefined;
      if (this.live.get(id) !== live || live.busy > 0 || this.turnSaves.has(id)) return;
      const run = this.lifecycle
        .run(id, async () => {
          if (this.live.get(id) !== live || live.busy > 0 || live.broken || this.closed) return;
          await this.opts.driver.workspace?.pull(id);
          await this.save(id);
        })
        .catch(bestEffort(this.opts.log, "volume not saved after a turn", { sandboxId: id }))
        .finally(() => this.turnSaves.delete(id));
      this.turnSaves.set(id, run);
    }, TURN_SAVE_DELAY_MS);
    live.saveTimer.unref();
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
        await this.opts.driver.workspace?.pull(id);
        const info = await snapshots.take(id, this.volumeDir(id));
        await this.records.patch(id, (r) => ({ ...r, lastSnapshotAt: info.at }));
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
    if (!live) {
      const elsewhere = await this.runsElsewhere(id);
      return elsewhere ? Boolean(await this.ask(elsewhere, { op: "stop", id, reason })) : false;
    }
    await this.stopLive(id, live, reason);
    return true;
  }

  /**
   * Drivers whose workspace is not the host folder (driver.workspace): push the
   * files written on the host at `paths` and, with `skills`, the skills folder
   * into the running sandbox. A no-op for the drivers that mount the folder.
   */
  async pushToSandbox(id: string, opts: { paths: string[]; skills: boolean }): Promise<void> {
    const sync = this.opts.driver.workspace;
    if (!sync || !this.live.has(id)) return;
    if (opts.paths.length > 0) await sync.push(id, opts.paths);
    if (opts.skills && this.opts.skillsDirFor) await sync.pushSkills(id);
  }

  private async stopLive(id: string, live: Live, reason: string): Promise<void> {
    clearTimeout(live.idleTimer);
    await this.opts.driver.stop(id, { reason, graceMs: 3000 });
    await live.instance.exited;
  }

  record(id: string): Promise<SandboxRecord | null> {
    return this.records.get(id);
  }

  status(id: string): Promise<SandboxStatus | null> {
    return this.listing.status(id);
  }

  /** One page of sandboxes in id order (SandboxListing.page). */
  page(opts: { after?: string; limit: number }): Promise<{
    sandboxes: SandboxStatus[];
    next?: string;
  }> {
    return this.listing.page(opts);
  }

  /** The `limit` most recently active sandboxes, and how many are recorded in all. */
  recent(limit: number): Promise<{ sandboxes: SandboxStatus[]; total: number }> {
    return this.listing.recent(limit);
  }

  get runningCount(): number {
    return this.live.size;
  }

  /**
   * Sandboxes by state for the `lobu.sandboxes` metric: this gateway's live
   * ones (busy with a turn, idle, broken) and starting ones from memory;
   * `stopped` are the recorded sandboxes not live here.
   */
  async countsByState(): Promise<Record<string, number>> {
    const counts = { busy: 0, idle: 0, broken: 0, starting: this.starting.size, stopped: 0 };
    for (const live of this.live.values()) {
      if (live.broken) counts.broken++;
      else if (live.busy > 0) counts.busy++;
      else counts.idle++;
    }
    counts.stopped = Math.max(0, (await this.records.list()).length - this.live.size);
    return counts;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.opts.control?.close();
    for (const live of this.live.values()) {
      clearTimeout(live.idleTimer);
      clearTimeout(live.saveTimer);
    }
    await Promise.all([...this.snapshotting.values(), ...this.turnSaves.values()].map(settled));
    const exits = [...this.live.values()].map((l) => settled(l.instance.exited));
    await this.opts.driver.close();
    // Stopped sandboxes' volumes are saved before their placement goes (their exit handlers,
    // registered first, have queued the saves once the exits are seen here).
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 10_000).unref())]);
    await Promise.all([...this.saving].map(settled));
    this.live.clear();
  }
}
