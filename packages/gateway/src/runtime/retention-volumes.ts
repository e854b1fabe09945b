import { existsSync } from "node:fs";
import { lstat, readdir, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { volumeImagePath } from "../sandbox/identity.ts";
import type { VolumeSnapshots } from "../sandbox/snapshots.ts";
import type { Cutoffs } from "./retention-policy.ts";

export interface VolumeSwept {
  files: number;
  transcripts: number;
  snapshots: number;
  /** Stopped disk-image volumes deleted whole (everything in them was older). */
  images: number;
}

/** The worker's own state in a volume; only its `sessions` (pi's transcripts) are kept for a time. */
const STATE_DIR = ".lobu";
const SESSIONS = "sessions";

/**
 * Delete what is older than its cutoff in a stopped sandbox's volume:
 * transcripts (`.lobu/sessions/`) by `transcripts`, every other file by
 * `files`, judged by modification time; empty folders left behind go too.
 * The worker's other state (its turn journal, pi's settings) stays. Snapshots
 * hold copies of both, so one taken before the later of the two cutoffs goes.
 *
 * A stopped disk-image volume (process tier with loop quotas) cannot be read
 * without mounting it: it goes whole once the image itself (its last write)
 * is older than both cutoffs, and is otherwise pruned file by file only when
 * that condition is met (docs/retention.md).
 */
export async function pruneVolume(
  volumeDir: string,
  snapshots: Pick<VolumeSnapshots, "pruneBefore" | "wipe">,
  id: string,
  cutoffs: Pick<Cutoffs, "files" | "transcripts">,
): Promise<VolumeSwept> {
  const out: VolumeSwept = { files: 0, transcripts: 0, snapshots: 0, images: 0 };
  const { files, transcripts } = cutoffs;
  if (files === undefined && transcripts === undefined) return out;
  const image = volumeImagePath(volumeDir);
  if (existsSync(image)) {
    const written = (await lstat(image)).mtimeMs;
    if (
      files !== undefined &&
      transcripts !== undefined &&
      written < Math.min(files, transcripts)
    ) {
      await snapshots.wipe(id, volumeDir);
      out.images++;
    }
    return out;
  }
  if (existsSync(volumeDir)) await pruneTree(volumeDir, "", cutoffs, out);
  const later = Math.max(
    files ?? Number.NEGATIVE_INFINITY,
    transcripts ?? Number.NEGATIVE_INFINITY,
  );
  out.snapshots += await snapshots.pruneBefore(id, later);
  return out;
}

/** `rel` is the folder's path inside the volume ("" for its root). Returns whether it is now empty. */
async function pruneTree(
  root: string,
  rel: string,
  cutoffs: Pick<Cutoffs, "files" | "transcripts">,
  out: VolumeSwept,
): Promise<boolean> {
  const dir = join(root, rel);
  const names = await readdir(dir);
  let left = names.length;
  for (const name of names) {
    const path = join(rel, name);
    const inState = rel === STATE_DIR || rel.startsWith(`${STATE_DIR}/`);
    const isTranscript =
      rel === join(STATE_DIR, SESSIONS) || rel.startsWith(`${STATE_DIR}/${SESSIONS}/`);
    const st = await lstat(join(root, path));
    if (st.isDirectory()) {
      // The state folder itself is walked only for its transcripts.
      if (inState && !(path === join(STATE_DIR, SESSIONS) || isTranscript)) continue;
      if (path === STATE_DIR) {
        await pruneTree(root, path, cutoffs, out);
        continue;
      }
      if (await pruneTree(root, path, cutoffs, out)) {
        // A folder something was written into meanwhile is not empty: it stays, as it should.
        await rmdir(join(root, path)).catch(() => undefined);
        left--;
      }
      continue;
    }
    if (inState && !isTranscript) continue;
    const cutoff = isTranscript ? cutoffs.transcripts : cutoffs.files;
    if (cutoff === undefined || st.mtimeMs >= cutoff) continue;
    await rm(join(root, path), { force: true });
    left--;
    if (isTranscript) out.transcripts++;
    else out.files++;
  }
  // The volume's root and the worker's folders stay, empty or not.
  return left === 0 && rel !== "" && rel !== STATE_DIR && rel !== join(STATE_DIR, SESSIONS);
}
