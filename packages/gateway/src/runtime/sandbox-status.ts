import { stat } from "node:fs/promises";
import type { SandboxInstance, SandboxUsage } from "../sandbox/driver.ts";
import { volumeImagePath } from "../sandbox/identity.ts";
import type { VolumeSnapshots } from "../sandbox/snapshots.ts";
import { volumeUsage } from "../sandbox/volume.ts";
import type { SandboxPlacement } from "./placement.ts";
import type { SandboxRecord, SandboxRecords } from "./sandbox-records.ts";

export type SandboxState = "starting" | "running" | "stopped";

/** A sandbox as operators see it: its record, plus what it is doing now. */
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

/** What the manager knows of a sandbox right now. */
export interface SandboxNow {
  /** Running here: its instance and turns in progress. */
  live?: { instance: SandboxInstance; busy: number };
  starting: boolean;
}

export interface StatusDeps {
  snapshots: VolumeSnapshots;
  disk: StoppedDisk;
  /** This gateway instance. */
  owner: string;
}

export async function statusOf(
  record: SandboxRecord,
  now: SandboxNow,
  deps: StatusDeps,
): Promise<SandboxStatus> {
  const { live } = now;
  const state: SandboxState = live ? "running" : now.starting ? "starting" : "stopped";
  let usage: SandboxUsage | undefined;
  if (live) usage = await live.instance.usage().catch(() => undefined);
  else {
    const diskBytes = await deps.disk.bytes(record.id);
    usage = diskBytes === undefined ? undefined : { diskBytes };
  }
  const snapshots = await deps.snapshots.list(record.id);
  return {
    ...record,
    state,
    busy: (live?.busy ?? 0) > 0,
    usage,
    owner: live ? deps.owner : undefined,
    pid: live?.instance.connection.pid,
    snapshots: { count: snapshots.length, lastAt: snapshots[0]?.at },
  };
}

/** Disk held by stopped sandboxes: their disk image (blocks in use) or their directory. */
export class StoppedDisk {
  readonly #volumeDir: (id: string) => string;
  readonly #cache = new Map<string, { at: number; bytes?: number }>();

  constructor(volumeDir: (id: string) => string) {
    this.#volumeDir = volumeDir;
  }

  /** Measured at most every 30 s. */
  async bytes(id: string): Promise<number | undefined> {
    const cached = this.#cache.get(id);
    if (cached && Date.now() - cached.at < 30_000) return cached.bytes;
    const dir = this.#volumeDir(id);
    const image = await stat(volumeImagePath(dir)).catch(() => undefined);
    const bytes = image
      ? image.blocks * 512
      : await volumeUsage(dir, "watch").catch(() => undefined);
    // An image written to just now may still be settling (a lazily detached mount): measure again next time.
    if (!image || Date.now() - image.mtimeMs > 120_000)
      this.#cache.set(id, { at: Date.now(), bytes });
    return bytes;
  }

  /** Its volume changed (started, stopped, reset): measure again next time. */
  forget(id: string): void {
    this.#cache.delete(id);
  }
}

/**
 * Sandboxes as operators list them: their records with what each is doing
 * now, measured a few at a time (a stopped one is measured on disk).
 */
export class SandboxListing {
  readonly #records: SandboxRecords;
  readonly #now: (id: string) => SandboxNow;
  readonly #deps: StatusDeps;
  readonly #placement: Pick<SandboxPlacement, "holder"> | undefined;

  constructor(opts: {
    records: SandboxRecords;
    now: (id: string) => SandboxNow;
    deps: StatusDeps;
    /** Several gateways: a sandbox held by another gateway runs there. */
    placement?: Pick<SandboxPlacement, "holder">;
  }) {
    this.#records = opts.records;
    this.#now = opts.now;
    this.#deps = opts.deps;
    this.#placement = opts.placement;
  }

  async status(id: string): Promise<SandboxStatus | null> {
    const record = await this.#records.get(id);
    return record ? this.#statusOf(record) : null;
  }

  /**
   * One page of sandboxes in id order: at most `limit` after the id `after`, and
   * the cursor of the next page when there is one. Paged because a status
   * measures the sandbox (disk, memory, snapshots): all of thousands at once
   * would keep a caller waiting for minutes.
   */
  async page(opts: {
    after?: string;
    limit: number;
  }): Promise<{ sandboxes: SandboxStatus[]; next?: string }> {
    const records = await this.#records.page({ ...opts, limit: opts.limit + 1 });
    const more = records.length > opts.limit;
    const shown = records.slice(0, opts.limit);
    const sandboxes = await this.#statuses(shown);
    return more ? { sandboxes, next: shown.at(-1)!.id } : { sandboxes };
  }

  /** The `limit` most recently active sandboxes, and how many are recorded in all. */
  async recent(limit: number): Promise<{ sandboxes: SandboxStatus[]; total: number }> {
    const records = await this.#records.list();
    records.sort((a, b) => b.lastActiveAt - a.lastActiveAt);
    return { sandboxes: await this.#statuses(records.slice(0, limit)), total: records.length };
  }

  async #statuses(records: SandboxRecord[]): Promise<SandboxStatus[]> {
    const out: SandboxStatus[] = [];
    // A few at a time: stopped sandboxes are measured on disk.
    for (let i = 0; i < records.length; i += 8)
      out.push(...(await Promise.all(records.slice(i, i + 8).map((r) => this.#statusOf(r)))));
    return out;
  }

  async #statusOf(record: SandboxRecord): Promise<SandboxStatus> {
    const now = this.#now(record.id);
    const status = await statusOf(record, now, this.#deps);
    if (now.live || !this.#placement) return status;
    const holder = await this.#placement.holder(record.id);
    return holder && holder !== this.#deps.owner
      ? { ...status, state: "running", owner: holder }
      : status;
  }
}
