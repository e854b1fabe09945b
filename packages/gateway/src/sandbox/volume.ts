import { constants } from "node:fs";
import {
  lchown,
  mkdir,
  open,
  readdir,
  realpath,
  rm,
  rmdir,
  statfs,
  unlink,
} from "node:fs/promises";
import { join } from "node:path";
import { digest, LobuError, type Logger } from "@lobu/core";
import { bestEffort, ignoreGone } from "@lobu/core/best-effort";
import { run, runOk, which } from "./commands.ts";
import { type VolumeMeta, volumeImagePath } from "./identity.ts";
import { isMountPoint } from "./mountinfo.ts";

/**
 * Disk quota for sandbox volumes.
 *
 * `loop`: the volume lives in a sparse ext4 image (`<volumeDir>.img`) that is
 * loop-mounted at `<volumeDir>` while the sandbox runs; the filesystem's size is
 * the quota, so writes past it fail with ENOSPC. Needs root, util-linux `mount`,
 * e2fsprogs and loop devices.
 * `watch`: the volume is a plain directory; a watchdog measures it (du) and stops
 * the sandbox with reason `disk_full` when it is over (a soft limit), and
 * RLIMIT_FSIZE caps any single file.
 */
export type QuotaMode = "loop" | "watch";

const MiB = 1024 * 1024;

export async function loopQuotaSupport(
  stateDir: string,
  logger: Logger,
): Promise<{ ok: boolean; detail: string }> {
  if (process.getuid?.() !== 0)
    return { ok: false, detail: "loop-image disk quota needs root; using the du watchdog" };
  const missing = ["mount", "umount", "mkfs.ext4", "e2fsck", "resize2fs"].filter((p) => !which(p));
  if (missing.length)
    return {
      ok: false,
      detail: `loop-image disk quota needs ${missing.join(", ")}: apt-get install -y mount e2fsprogs`,
    };
  const dir = join(stateDir, "loop-check");
  const image = join(dir, "check.img");
  const mnt = join(dir, "mnt");
  try {
    await mkdir(mnt, { recursive: true, mode: 0o700 });
    await makeImage(image, 4, 0, 0, logger);
    await runOk("mount", ["-o", "loop,nosuid,nodev", image, mnt]);
    await runOk("umount", [mnt]);
    return { ok: true, detail: "disk quota: loop-mounted ext4 image per volume (hard limit)" };
  } catch (err) {
    return {
      ok: false,
      detail: `loop-image disk quota unavailable (${(err as Error).message.trim()}); check /dev/loop-control and that the kernel has the loop module (modprobe loop); using the du watchdog`,
    };
  } finally {
    await run("umount", [mnt]); // never throws; not mounted when the check failed early
    // Left behind, it would fail the next check (the image is created exclusively).
    await rm(dir, { recursive: true, force: true }).catch(
      bestEffort(logger, "loop quota check directory left behind", { dir }),
    );
  }
}

async function makeImage(
  image: string,
  sizeMb: number,
  uid: number,
  gid: number,
  logger: Logger,
): Promise<void> {
  const fh = await open(image, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
  try {
    await fh.truncate(sizeMb * MiB);
  } finally {
    await fh.close();
  }
  try {
    await runOk("mkfs.ext4", [
      "-q",
      "-F",
      "-m",
      "0",
      "-L",
      "lobu-volume",
      "-E",
      `root_owner=${uid}:${gid},lazy_itable_init=1,lazy_journal_init=1`,
      image,
    ]);
  } catch (err) {
    // Left behind, it fails the next attempt: images are created exclusively.
    await unlink(image)
      .catch(ignoreGone)
      .catch(bestEffort(logger, "half-made volume image left behind", { image }));
    throw err;
  }
}

async function resizeImage(image: string, fromMb: number, toMb: number, logger: Logger) {
  // e2fsck exits 1 when it fixed something: still fine to resize.
  const check = await run("e2fsck", ["-f", "-p", image]);
  if (check.code !== 0 && check.code !== 1)
    throw new Error(`e2fsck ${image}: ${check.stdout}${check.stderr}`);
  if (toMb > fromMb) {
    const fh = await open(image, "r+");
    await fh.truncate(toMb * MiB).finally(() => fh.close());
    await runOk("resize2fs", [image]);
    return toMb;
  }
  const shrink = await run("resize2fs", [image, `${toMb}M`]);
  if (shrink.code !== 0) {
    logger.warn(
      { image, fromMb, toMb, err: shrink.stderr.trim() },
      "cannot shrink sandbox volume below its contents; keeping its size",
    );
    return fromMb;
  }
  const fh = await open(image, "r+");
  await fh.truncate(toMb * MiB).finally(() => fh.close());
  return toMb;
}

/** A volume still in use elsewhere: transient, never a reason to repair the sandbox. */
export const VOLUME_BUSY = "sandbox_volume_busy";

/**
 * A volume that was busy at its last stop was detached lazily: its filesystem
 * lives on until the last user lets go. Mounting the image again meanwhile would
 * run two ext4 instances on one image, so wait for the old one to go.
 */
async function waitDetached(image: string): Promise<void> {
  const losetup = which("losetup");
  if (!losetup) return;
  for (let attempt = 0; attempt < 50; attempt++) {
    const res = await run(losetup, ["-j", image]);
    if (res.code !== 0 || !res.stdout.trim()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new LobuError(
    VOLUME_BUSY,
    `the disk image ${image} is still attached from its previous run (its volume was busy when it stopped)`,
    { status: 503, hint: "Try again in a few seconds." },
  );
}

async function mountImage(image: string, at: string): Promise<void> {
  await waitDetached(image);
  const opts = ["-o", "loop,nosuid,nodev,noatime", image, at];
  const first = await run("mount", opts);
  if (first.code === 0) return;
  // An unclean shutdown can leave the filesystem needing a check.
  await run("e2fsck", ["-p", image]);
  await runOk("mount", opts);
}

export async function unmount(at: string, logger: Logger): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    if (!(await isMountPoint(at))) return;
    const res = await run("umount", [at]);
    if (res.code === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  logger.warn({ at }, "volume still busy; detaching it lazily");
  await run("umount", ["-l", at]);
}

/**
 * Mount the volume's image at `volumeDir`, creating or resizing it first. Files the
 * host left in the (unmounted) directory meanwhile are moved into the image, so
 * the gateway may drop files into a stopped sandbox's volume. Returns the updated meta.
 */
export async function mountLoopVolume(opts: {
  volumeDir: string;
  meta: VolumeMeta;
  diskMb: number;
  stateDir: string;
  logger: Logger;
}): Promise<VolumeMeta> {
  const { volumeDir, meta, diskMb, logger } = opts;
  const at = await realpath(volumeDir);
  if (await isMountPoint(at)) return meta; // left mounted by a gateway that crashed
  const image = volumeImagePath(volumeDir);
  let imageMb = meta.imageMb;
  const fresh = imageMb === undefined || !(await exists(image));
  if (fresh) {
    await makeImage(image, diskMb, meta.uid, meta.gid, logger);
    imageMb = diskMb;
  } else if (imageMb !== diskMb) {
    imageMb = await resizeImage(image, imageMb!, diskMb, logger);
  }

  const pending = await readdir(at);
  if (fresh || pending.length > 0) {
    const staging = join(opts.stateDir, "mnt", digest(at, 16));
    await mkdir(staging, { recursive: true, mode: 0o700 });
    await mountImage(image, staging);
    try {
      if (fresh)
        await rmdir(join(staging, "lost+found"))
          .catch(ignoreGone)
          .catch(
            bestEffort(
              logger,
              "lost+found left in a new volume",
              { volumeDir },
              { level: "debug" },
            ),
          );
      if (pending.length > 0) {
        const copy = await run("cp", [
          "-a",
          "--",
          ...pending.map((n) => join(at, n)),
          `${staging}/`,
        ]);
        if (copy.code !== 0)
          throw new Error(
            `cannot move files into the volume image (${copy.stderr.trim()}); the volume may be over its ${diskMb} MB quota`,
          );
        await runOk("chown", [
          "-R",
          "-h",
          `${meta.uid}:${meta.gid}`,
          "--",
          ...pending.map((n) => join(staging, n)),
        ]);
        for (const name of pending) await rm(join(at, name), { recursive: true, force: true });
      }
    } finally {
      await unmount(staging, logger);
      await rmdir(staging)
        .catch(ignoreGone)
        .catch(
          bestEffort(logger, "staging mount point left behind", { staging }, { level: "debug" }),
        );
    }
  }
  await mountImage(image, at);
  return { ...meta, imageMb };
}

/** Bytes used by the volume: filesystem usage when it is a mounted image, else du. */
export async function volumeUsage(volumeDir: string, mode: QuotaMode): Promise<number | undefined> {
  if (mode === "loop") {
    try {
      const s = await statfs(volumeDir);
      return (s.blocks - s.bfree) * s.bsize;
    } catch {
      return undefined;
    }
  }
  const res = await run("du", ["-s", "-x", "-B1", "--", volumeDir], { timeoutMs: 120_000 });
  const bytes = Number(res.stdout.split(/\s/)[0]);
  return Number.isFinite(bytes) && res.stdout ? bytes : undefined;
}

/** Give the sandbox's uid everything in its volume the host wrote meanwhile (root only). */
export async function adoptVolumeFiles(volumeDir: string, uid: number, gid: number): Promise<void> {
  // A new conversation's volume is an empty folder: no walk and no `find` process
  // (a process start is several ms of its first wake, more on a loaded machine).
  if ((await readdir(volumeDir).catch(() => undefined))?.length === 0) {
    await lchown(volumeDir, uid, gid);
    return;
  }
  await runOk("find", [
    volumeDir,
    "-xdev",
    "(",
    "!",
    "-uid",
    String(uid),
    "-o",
    "!",
    "-gid",
    String(gid),
    ")",
    "-exec",
    "chown",
    "-h",
    `${uid}:${gid}`,
    "{}",
    "+",
  ]);
}

async function exists(path: string): Promise<boolean> {
  try {
    await (await open(path, "r")).close();
    return true;
  } catch {
    return false;
  }
}
