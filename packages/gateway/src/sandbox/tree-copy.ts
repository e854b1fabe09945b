import { constants, existsSync, type Stats } from "node:fs";
import {
  chmod,
  copyFile,
  lchown,
  link,
  lstat,
  mkdir,
  open,
  opendir,
  readlink,
  symlink,
  utimes,
} from "node:fs/promises";
import { join } from "node:path";

/**
 * Copies a directory tree that an agent may be changing while we read it,
 * possibly as root. Every name is resolved relative to the directory already
 * opened (through /proc/self/fd, the same as openat) and never through a
 * symlink, so swapping a directory for a link mid-copy cannot make the copy
 * read the host's files. Symlinks are copied as links, special files skipped.
 */

export interface CopyStats {
  files: number;
  dirs: number;
  links: number;
  /** Bytes of regular files read (copied, not linked). */
  bytesCopied: number;
  /** Files hard-linked to an identical one in `linkFrom`. */
  linked: number;
  /** Entries whose owner could not be kept (they belong to the copier), and the first error. */
  ownersNotKept: number;
  ownerError?: string;
}

export interface CopyOptions {
  /** An earlier, immutable copy: unchanged files are hard-linked to it instead of copied. */
  linkFrom?: string;
  /**
   * When that copy was started (epoch ms). A file modified around or after then
   * is always copied: file timestamps are coarse (a kernel tick), so a same-size
   * rewrite right after the earlier copy read it can keep the same mtime (the
   * "racy timestamp" problem git and rsync guard against too).
   */
  linkFromTakenAt?: number;
  /** Names skipped at the top level (e.g. scratch dirs). */
  skipTop?: string[];
  /** Keep owners (root only; otherwise files belong to the copier). */
  preserveOwner?: boolean;
}

const hasProcFd = process.platform === "linux" && existsSync("/proc/self/fd");
const OPEN_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** Permission bits kept: never setuid/setgid (a copy made as root must not mint them). */
const SAFE_MODE = 0o1777;
const OPEN_FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Margin for coarse file timestamps and small clock steps. */
const RACY_MS = 2000;

function sameFile(
  a: { size: number; mtimeMs: number; mode: number; uid: number; gid: number },
  b: { size: number; mtimeMs: number; mode: number; uid: number; gid: number },
): boolean {
  // Copies keep mtimes only to the millisecond.
  return (
    a.size === b.size &&
    Math.abs(a.mtimeMs - b.mtimeMs) < 1 &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid
  );
}

export async function copyTree(
  src: string,
  dst: string,
  opts: CopyOptions = {},
): Promise<CopyStats> {
  const stats: CopyStats = {
    files: 0,
    dirs: 0,
    links: 0,
    bytesCopied: 0,
    linked: 0,
    ownersNotKept: 0,
  };
  const preserveOwner = opts.preserveOwner ?? process.getuid?.() === 0;
  const root = await open(src, OPEN_DIR);
  try {
    const linkFrom = opts.linkFrom
      ? { dir: opts.linkFrom, takenAt: opts.linkFromTakenAt }
      : undefined;
    await copyDir(root, src, dst, linkFrom, new Set(opts.skipTop ?? []), preserveOwner, stats);
  } finally {
    await root.close();
  }
  return stats;
}

/**
 * Give a copied entry its source's owner. A failure (a filesystem without
 * owners, a user namespace without that uid) does not stop the copy: it is
 * counted in `stats` for the caller to report, since the entry now belongs to
 * the copier and a sandbox may not be able to write it.
 */
async function keepOwner(
  path: string,
  owner: { uid: number; gid: number },
  stats: CopyStats,
): Promise<void> {
  try {
    await lchown(path, owner.uid, owner.gid);
  } catch (err) {
    stats.ownersNotKept++;
    stats.ownerError ??= (err as Error).message;
  }
}

type Handle = Awaited<ReturnType<typeof open>>;
/** The matching directory of the earlier copy, and when that copy started. */
type LinkFrom = { dir: string; takenAt?: number };

async function copyDir(
  dir: Handle,
  srcPath: string,
  dst: string,
  linkFrom: LinkFrom | undefined,
  skip: Set<string>,
  preserveOwner: boolean,
  stats: CopyStats,
): Promise<void> {
  const st = await dir.stat();
  await mkdir(dst, { mode: 0o700 });
  stats.dirs++;
  const base = hasProcFd ? `/proc/self/fd/${dir.fd}` : srcPath;
  const listing = await opendir(base);
  const names: string[] = [];
  for await (const entry of listing) if (!skip.has(entry.name)) names.push(entry.name);
  for (const name of names) {
    const path = join(base, name);
    const target = join(dst, name);
    let entry: Stats;
    try {
      entry = await lstat(path);
    } catch {
      continue; // gone meanwhile
    }
    if (entry.isDirectory()) {
      let child: Handle;
      try {
        child = await open(path, OPEN_DIR);
      } catch {
        continue; // replaced by something else meanwhile
      }
      try {
        await copyDir(
          child,
          join(srcPath, name),
          target,
          linkFrom && { ...linkFrom, dir: join(linkFrom.dir, name) },
          new Set(),
          preserveOwner,
          stats,
        );
      } finally {
        await child.close();
      }
    } else if (entry.isSymbolicLink()) {
      let to: string;
      try {
        to = await readlink(path);
      } catch {
        continue; // replaced or gone meanwhile
      }
      await symlink(to, target);
      if (preserveOwner) await keepOwner(target, entry, stats);
      stats.links++;
    } else if (entry.isFile()) {
      // Only a file last modified well before the earlier copy started can be linked.
      const racy = linkFrom?.takenAt === undefined || entry.mtimeMs >= linkFrom.takenAt - RACY_MS;
      const previous = linkFrom && !racy ? join(linkFrom.dir, name) : undefined;
      await copyFileAt(path, target, entry, previous, preserveOwner, stats);
    }
  }
  if (preserveOwner) await keepOwner(dst, st, stats);
  await chmod(dst, st.mode & SAFE_MODE);
  await utimes(dst, st.atime, st.mtime);
}

async function copyFileAt(
  path: string,
  target: string,
  entry: Stats,
  previous: string | undefined,
  preserveOwner: boolean,
  stats: CopyStats,
): Promise<void> {
  if (previous) {
    const prev = await lstat(previous).catch(() => undefined);
    if (prev?.isFile() && sameFile(prev, entry)) {
      await link(previous, target);
      stats.files++;
      stats.linked++;
      return;
    }
  }
  let fh: Handle;
  try {
    fh = await open(path, OPEN_FILE);
  } catch {
    return; // gone, or replaced by a link meanwhile
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return;
    // Through the descriptor: the file we opened, whatever its name points at now.
    const from = hasProcFd ? `/proc/self/fd/${fh.fd}` : path;
    await copyFile(from, target, constants.COPYFILE_FICLONE);
    if (preserveOwner) await keepOwner(target, st, stats);
    await chmod(target, st.mode & SAFE_MODE);
    await utimes(target, st.atime, st.mtime);
    stats.files++;
    stats.bytesCopied += st.size;
  } finally {
    await fh.close();
  }
}
