import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createLogger, type Logger } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import { z } from "zod";
import { decodeRecord } from "../util/stored-record.ts";
import { checkSandboxId } from "./env.ts";
import { volumeImagePath } from "./identity.ts";
import { KeyedQueue } from "./keyed-queue.ts";
import { isMountPoint } from "./mountinfo.ts";
import { type CopyStats, copyTree } from "./tree-copy.ts";

/**
 * Point-in-time copies of sandbox volumes, so a sandbox whose agent wrecked its
 * workspace can start again from its last good state.
 *
 * Layout: `<root>/<sandbox id>/<snapshot name>/` (a copy of the volume) and
 * `index.json`. A snapshot hard-links every file unchanged since the previous
 * snapshot (snapshots are never modified, so sharing is safe) and copies the
 * rest (a reflink where the filesystem supports it). The volume itself is
 * never hard-linked to: the agent could change the snapshot through it.
 *
 * Snapshots are file-level for every driver, loop-image volumes included (read
 * through the mounted image while the sandbox runs); restoring one into a
 * loop-image volume sets the old image aside, and the process driver builds a
 * fresh image from the restored files on the next start.
 */

export const SnapshotInfo = z.object({
  /** `s<at>`: a directory name next to index.json, never a path. */
  name: z.string().regex(/^s\d+$/),
  /** When it was taken (ms since epoch). */
  at: z.number(),
  files: z.number(),
  /** Bytes copied for this snapshot (unchanged files are shared with the previous one). */
  bytesCopied: z.number(),
  linked: z.number(),
  /** Restoring it did not help: never restored again. */
  bad: z.string().optional(),
});
export type SnapshotInfo = z.infer<typeof SnapshotInfo>;

/** A sandbox's `index.json`. */
const SnapshotIndex = z.array(SnapshotInfo);

export interface VolumeSnapshotsOptions {
  /** Directory holding all snapshots (never visible to any sandbox). */
  root: string;
  /** Snapshots kept per sandbox (default 3). */
  keep?: number;
  logger?: Logger;
}

/** Top-level volume entries never snapshotted: scratch space and filesystem bookkeeping. */
const SKIP = [".tmp", "lost+found"];
const INDEX = "index.json";
const BROKEN = "broken";

export class VolumeSnapshots {
  readonly root: string;
  readonly keep: number;
  readonly #logger: Logger;
  /** One operation per sandbox at a time. */
  readonly #queue = new KeyedQueue();

  constructor(opts: VolumeSnapshotsOptions) {
    this.root = opts.root;
    this.keep = Math.max(1, opts.keep ?? 3);
    this.#logger = opts.logger ?? createLogger("snapshots");
  }

  #dir(id: string): string {
    checkSandboxId(id);
    return join(this.root, id);
  }

  /** Newest first. */
  async list(id: string): Promise<SnapshotInfo[]> {
    const file = join(this.#dir(id), INDEX);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      return [];
    }
    const decoded = decodeRecord(SnapshotIndex, text);
    if (!decoded.ok) {
      // Its snapshots are not restored (a guessed one could be the wrong state); the next one starts a new index.
      this.#logger.error(
        { sandboxId: id, file, reason: decoded.reason },
        "snapshot index is unreadable (corrupt or from an incompatible version); its snapshots are not used",
      );
      return [];
    }
    return decoded.record
      .filter((s) => existsSync(join(this.#dir(id), s.name)))
      .sort((a, b) => b.at - a.at);
  }

  /** The newest snapshot not known to be bad. */
  async lastGood(id: string): Promise<SnapshotInfo | undefined> {
    return (await this.list(id)).find((s) => !s.bad);
  }

  async #writeIndex(id: string, index: SnapshotInfo[]): Promise<void> {
    const file = join(this.#dir(id), INDEX);
    await writeFile(`${file}.tmp`, `${JSON.stringify(index, null, 1)}\n`, { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  }

  /** Copy the volume now. Cheap after the first: only changed files are copied. */
  take(id: string, volumeDir: string): Promise<SnapshotInfo> {
    return this.#queue.run(id, async () => {
      const dir = this.#dir(id);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const index = await this.list(id);
      const previous = index[0];
      const at = Math.max(Date.now(), (previous?.at ?? 0) + 1);
      const name = `s${at}`;
      const partial = join(dir, `.${name}.partial`);
      await rm(partial, { recursive: true, force: true });
      let stats: CopyStats;
      try {
        stats = await copyTree(volumeDir, partial, {
          linkFrom: previous ? join(dir, previous.name) : undefined,
          linkFromTakenAt: previous?.at,
          skipTop: SKIP,
        });
        await rename(partial, join(dir, name));
        this.#reportOwners(id, name, stats);
      } catch (err) {
        await rm(partial, { recursive: true, force: true }).catch(
          bestEffort(this.#logger, "partial snapshot left behind", { sandboxId: id, partial }),
        );
        throw err;
      }
      const info: SnapshotInfo = {
        name,
        at,
        files: stats.files,
        bytesCopied: stats.bytesCopied,
        linked: stats.linked,
      };
      const kept = [info, ...index];
      for (const old of kept.splice(this.keep)) {
        await rm(join(dir, old.name), { recursive: true, force: true });
      }
      await this.#writeIndex(id, kept);
      return info;
    });
  }

  async markBad(id: string, name: string, reason: string): Promise<void> {
    await this.#queue.run(id, async () => {
      const index = await this.list(id);
      const snap = index.find((s) => s.name === name);
      if (!snap || snap.bad) return;
      snap.bad = reason;
      await this.#writeIndex(id, index);
    });
  }

  /**
   * Replace the (stopped) sandbox's volume with a snapshot (the newest good one
   * unless named), or with an empty volume when `snapshot` is null or none is
   * left. The replaced volume, disk image included, is kept aside in
   * `<root>/<id>/broken/` until the next restore. Resolves with what was restored.
   */
  restore(
    id: string,
    volumeDir: string,
    snapshot?: SnapshotInfo | null,
  ): Promise<SnapshotInfo | undefined> {
    return this.#queue.run(id, async () => {
      if (await isMountPoint(volumeDir))
        throw new Error(`volume ${volumeDir} is still mounted: stop the sandbox first`);
      const dir = this.#dir(id);
      const chosen =
        snapshot === null ? undefined : (snapshot ?? (await this.list(id)).find((s) => !s.bad));
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const broken = join(dir, BROKEN);
      await rm(broken, { recursive: true, force: true });
      await mkdir(broken, { mode: 0o700 });
      await this.#setAside(volumeDir, join(broken, "volume"));
      await this.#setAside(volumeImagePath(volumeDir), join(broken, "volume.img"));
      if (chosen) {
        this.#reportOwners(id, chosen.name, await copyTree(join(dir, chosen.name), volumeDir));
      } else {
        await mkdir(volumeDir, { recursive: true, mode: 0o700 });
      }
      this.#logger.info(
        { sandboxId: id, snapshot: chosen?.name ?? "empty" },
        "sandbox volume restored",
      );
      return chosen;
    });
  }

  /** Files a copy could not give their owner belong to the gateway: say so (see copyTree). */
  #reportOwners(sandboxId: string, snapshot: string, stats: CopyStats): void {
    if (stats.ownersNotKept === 0) return;
    this.#logger.warn(
      { sandboxId, snapshot, entries: stats.ownersNotKept, err: stats.ownerError },
      "snapshot copy could not keep file owners: those files belong to the gateway's user",
    );
  }

  async #setAside(from: string, to: string): Promise<void> {
    if (!existsSync(from)) return;
    try {
      await rename(from, to);
    } catch {
      // Another filesystem: nothing to keep then.
      await rm(from, { recursive: true, force: true });
    }
  }

  /**
   * Delete snapshots taken before `before` (ms since epoch): every file in one
   * is at least that old (retention). Returns how many were deleted.
   */
  pruneBefore(id: string, before: number): Promise<number> {
    return this.#queue.run(id, async () => {
      const index = await this.list(id);
      const old = index.filter((s) => s.at < before);
      if (old.length === 0) return 0;
      for (const s of old) await rm(join(this.#dir(id), s.name), { recursive: true, force: true });
      await this.#writeIndex(
        id,
        index.filter((s) => s.at >= before),
      );
      return old.length;
    });
  }

  /** Delete the volume (image included), every snapshot and the set-aside copy; leave nothing. */
  destroy(id: string, volumeDir: string): Promise<void> {
    return this.#queue.run(id, async () => {
      if (await isMountPoint(volumeDir))
        throw new Error(`volume ${volumeDir} is still mounted: stop the sandbox first`);
      await rm(volumeDir, { recursive: true, force: true });
      await rm(volumeImagePath(volumeDir), { force: true });
      await rm(this.#dir(id), { recursive: true, force: true });
    });
  }

  /** Delete the volume (image included) and every snapshot; leave an empty volume. */
  wipe(id: string, volumeDir: string): Promise<void> {
    return this.#queue.run(id, async () => {
      if (await isMountPoint(volumeDir))
        throw new Error(`volume ${volumeDir} is still mounted: stop the sandbox first`);
      await rm(volumeDir, { recursive: true, force: true });
      await rm(volumeImagePath(volumeDir), { force: true });
      await rm(this.#dir(id), { recursive: true, force: true });
      await mkdir(volumeDir, { recursive: true, mode: 0o700 });
    });
  }
}

/** "2026-11-26 01:22 UTC" */
export function snapshotTime(at: number): string {
  return `${new Date(at).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}
