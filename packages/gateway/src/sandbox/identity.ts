import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { LobuError } from "@lobu/core";
import { settled } from "@lobu/core/best-effort";

/**
 * Per-volume metadata the driver keeps next to (never inside) the volume, so the
 * agent cannot edit it: `<volumeDir>.sandbox.json`.
 */
export interface VolumeMeta {
  version: 1;
  /** Host uid/gid the sandbox runs as (root gateways) or its uid inside the user namespace. */
  uid: number;
  gid: number;
  /** Disk image size when the volume lives in a loop-mounted image. */
  imageMb?: number;
}

export const volumeMetaPath = (volumeDir: string): string => `${volumeDir}.sandbox.json`;
export const volumeImagePath = (volumeDir: string): string => `${volumeDir}.img`;

export async function readVolumeMeta(volumeDir: string): Promise<VolumeMeta | undefined> {
  const file = volumeMetaPath(volumeDir);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    const meta = JSON.parse(text) as Partial<VolumeMeta>;
    if (Number.isInteger(meta.uid) && Number.isInteger(meta.gid) && meta.uid! > 0)
      return meta as VolumeMeta;
  } catch {
    // fall through
  }
  throw new LobuError("volume_meta_invalid", `sandbox volume metadata ${file} is unreadable`, {
    status: 500,
    hint: "Restore it, or delete it to give the sandbox a new uid (its files are re-owned on next start).",
  });
}

export async function writeVolumeMeta(volumeDir: string, meta: VolumeMeta): Promise<void> {
  const file = volumeMetaPath(volumeDir);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

/**
 * Gives every volume its own uid/gid from `uidBase` up, stable across restarts (the
 * volume's metadata holds it) and never reused (`<stateDir>/uids.json` holds the
 * next free one; sibling volumes' metadata is consulted too, in case it was lost).
 */
export class UidAllocator {
  readonly #stateDir: string;
  readonly #uidBase: number;
  #lock: Promise<unknown> = Promise.resolve();

  constructor(opts: { stateDir: string; uidBase: number }) {
    this.#stateDir = opts.stateDir;
    this.#uidBase = opts.uidBase;
  }

  /** The volume's identity, allocating one on first use (`fresh` tells). */
  forVolume(volumeDir: string): Promise<{ meta: VolumeMeta; fresh: boolean }> {
    const next = this.#lock.then(() => this.#forVolume(volumeDir));
    this.#lock = settled(next);
    return next;
  }

  async #forVolume(volumeDir: string): Promise<{ meta: VolumeMeta; fresh: boolean }> {
    const existing = await readVolumeMeta(volumeDir);
    if (existing) {
      await this.#reserve(existing.uid);
      return { meta: existing, fresh: false };
    }
    const uid = Math.max(await this.#next(), (await this.#siblingMax(volumeDir)) + 1);
    const meta: VolumeMeta = { version: 1, uid, gid: uid };
    await writeVolumeMeta(volumeDir, meta);
    await this.#reserve(uid);
    return { meta, fresh: true };
  }

  get #tableFile(): string {
    return join(this.#stateDir, "uids.json");
  }

  async #next(): Promise<number> {
    try {
      const table = JSON.parse(await readFile(this.#tableFile, "utf8")) as { next?: number };
      if (Number.isInteger(table.next)) return Math.max(this.#uidBase, table.next!);
    } catch {
      // first use
    }
    return this.#uidBase;
  }

  async #reserve(uid: number): Promise<void> {
    if ((await this.#next()) > uid) return;
    await mkdir(this.#stateDir, { recursive: true, mode: 0o700 });
    const tmp = `${this.#tableFile}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ next: uid + 1 })}\n`, { mode: 0o600 });
    await rename(tmp, this.#tableFile);
  }

  async #siblingMax(volumeDir: string): Promise<number> {
    let max = this.#uidBase - 1;
    let names: string[] = [];
    try {
      names = await readdir(dirname(volumeDir));
    } catch {
      return max;
    }
    const self = basename(volumeMetaPath(volumeDir));
    for (const name of names) {
      if (!name.endsWith(".sandbox.json") || name === self) continue;
      try {
        const meta = JSON.parse(await readFile(join(dirname(volumeDir), name), "utf8")) as {
          uid?: number;
        };
        if (Number.isInteger(meta.uid)) max = Math.max(max, meta.uid!);
      } catch {
        // not ours
      }
    }
    return max;
  }
}
