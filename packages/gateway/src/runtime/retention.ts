import { errorMessage, type LobuConfig } from "@lobu/core";
import type { Logger } from "pino";
import type { Store } from "../store/port.ts";
import { scanKeys } from "../store/scan.ts";
import { decodeRecord } from "../util/stored-record.ts";
import { anyRetention, cutoffsFor } from "./retention-policy.ts";
import { type RecordsSwept, sweepRecords } from "./retention-records.ts";
import { pruneVolume, type VolumeSwept } from "./retention-volumes.ts";
import type { SandboxManager } from "./sandbox-manager.ts";
import { SandboxRecord } from "./sandbox-records.ts";

/** The store's sweep is one gateway's at a time: this lock, held a while longer than a sweep takes. */
export const RETENTION_LOCK = "retention-sweep";
const LOCK_MS = 15 * 60_000;

export interface RetentionDeps {
  config: LobuConfig;
  store: Store;
  sandboxes: Pick<SandboxManager, "whileStopped">;
  log: Logger;
  /** This gateway (the lock's holder). */
  owner: string;
  /** The clock retention is measured by (tests move it). */
  now?: () => number;
}

export interface SweepReport {
  /** False when another gateway held the store's sweep (its volumes were swept all the same). */
  records: RecordsSwept | null;
  volumes: VolumeSwept;
  /** Sandboxes skipped because they ran, started or had a message waiting. */
  busySandboxes: number;
}

/**
 * Deletes what `[retention]` and `[agents.<id>.retention]` say is too old
 * (docs/retention.md). The store's records are swept by one gateway at a
 * time (a lock in the store); each gateway sweeps the volumes in its own
 * data dir. Nothing of a running turn is touched: a queued or running
 * message is skipped, and a sandbox's volume is pruned only while it is
 * stopped, with its start held back until the pruning is done.
 */
export class RetentionSweeper {
  readonly #d: RetentionDeps;
  readonly #now: () => number;
  #running: Promise<SweepReport> | undefined;

  constructor(deps: RetentionDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** Sweep every `[retention] sweep_interval`; returns the stop function. Nothing when no retention is set. */
  schedule(): () => void {
    if (!anyRetention(this.#d.config)) return () => {};
    const timer = setInterval(() => {
      this.sweep().catch((err) =>
        this.#d.log.error({ err: errorMessage(err) }, "retention sweep failed; tried again later"),
      );
    }, this.#d.config.retention.sweep_interval);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** One sweep; a sweep already running on this gateway is joined, not doubled. */
  sweep(): Promise<SweepReport> {
    this.#running ??= this.#sweep().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #sweep(): Promise<SweepReport> {
    const { config, store, log, owner } = this.#d;
    const now = this.#now();
    const of = (agentId: string | undefined) => cutoffsFor(config, agentId, now);
    let records: RecordsSwept | null = null;
    const token = await store.locks.acquire(RETENTION_LOCK, owner, LOCK_MS);
    if (token) {
      try {
        records = await sweepRecords(store, of);
      } finally {
        await store.locks.release(RETENTION_LOCK, token);
      }
    }
    const { volumes, busy } = await this.#sweepVolumes(of);
    const report = { records, volumes, busySandboxes: busy };
    log.info({ retention: report }, "retention sweep done");
    return report;
  }

  async #sweepVolumes(of: (agentId: string) => ReturnType<typeof cutoffsFor>) {
    const { store, sandboxes, log } = this.#d;
    const volumes: VolumeSwept = { files: 0, transcripts: 0, snapshots: 0, images: 0 };
    let busy = 0;
    for await (const { key, value } of scanKeys(store.kv, "sandbox:")) {
      const rec = decodeRecord(SandboxRecord, value);
      if (!rec.ok) continue;
      const id = key.slice("sandbox:".length);
      const cutoffs = of(rec.record.key.agentId);
      if (cutoffs.files === undefined && cutoffs.transcripts === undefined) continue;
      // A message waiting or running for it (on any gateway): its turn's files are left alone.
      if ((await store.queue.pending(id, { limit: 1 })).length > 0) {
        busy++;
        continue;
      }
      try {
        const swept = await sandboxes.whileStopped(id, (dir, snapshots) =>
          pruneVolume(dir, snapshots, id, cutoffs),
        );
        if (!swept) {
          busy++;
          continue;
        }
        volumes.files += swept.files;
        volumes.transcripts += swept.transcripts;
        volumes.snapshots += swept.snapshots;
        volumes.images += swept.images;
      } catch (err) {
        log.warn({ sandboxId: id, err: errorMessage(err) }, "retention: volume not pruned");
      }
    }
    return { volumes, busy };
  }
}
