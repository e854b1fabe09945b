import { readdir, readFile, realpath } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Logger } from "@lobu/core";
import { run, which } from "./commands.ts";
import { readMounts } from "./mountinfo.ts";
import { unmount } from "./volume.ts";

/**
 * Mounts and loop devices a gateway keeps under its data dir:
 *
 * - `volumes/<id>`: a sandbox's loop-mounted disk image (`volumes/<id>.img`);
 * - `sandbox-state/…`: the staging mount that moves files into an image, the
 *   throwaway volume of the start-up trial sandbox and the loop-support check.
 *
 * A gateway that stops normally unmounts each as its sandbox stops. One that
 * dies without stopping them (SIGKILL, OOM kill, power loss) leaves them mounted,
 * with their loop devices attached, until the next start on that data dir
 * releases them. Only the holder of the data dir's exclusive lock
 * (datadir/lock.ts) may call these: it is then certain that no other process
 * uses anything there (`lobu doctor` probes elsewhere while a gateway holds it).
 */

export interface Released {
  unmounted: string[];
  detached: string[];
}

function owned(root: string, path: string): boolean {
  return dirname(path) === join(root, "volumes") || path.startsWith(`${root}/sandbox-state/`);
}

/** Loop devices whose backing file is `owned` (from sysfs; no util-linux needed). */
async function loopDevices(root: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const names = await readdir("/sys/block").catch(() => [] as string[]);
  for (const name of names.filter((n) => /^loop\d+$/.test(n))) {
    // Only attached devices have a backing file; a deleted one is marked " (deleted)".
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, "utf8").catch(
      () => undefined,
    );
    const file = backing?.trim().replace(/ \(deleted\)$/, "");
    if (!file) continue;
    // An image sits next to its mount point: volumes/<id>.img, sandbox-state/…/x.img.
    if (owned(root, file.replace(/\.img$/, ""))) found.set(`/dev/${name}`, file);
  }
  return found;
}

/**
 * Unmount what this data dir has mounted (deepest first) and detach the loop
 * devices of its images that nothing mounts any more. Returns what was released.
 */
export async function releaseLeftovers(dataDir: string, logger: Logger): Promise<Released> {
  const released: Released = { unmounted: [], detached: [] };
  if (process.platform !== "linux") return released;
  const root = await realpath(dataDir).catch(() => undefined);
  if (!root) return released;
  const mounts = (await readMounts().catch(() => []))
    .map((m) => m.mountPoint)
    .filter((at) => owned(root, at))
    .sort((a, b) => b.length - a.length);
  for (const at of new Set(mounts)) {
    logger.info({ at }, "unmounting a volume left mounted under the data dir");
    await unmount(at, logger);
    released.unmounted.push(at);
  }
  const losetup = which("losetup");
  if (!losetup) return released;
  const inUse = new Set((await readMounts().catch(() => [])).map((m) => m.source));
  for (const [device, file] of await loopDevices(root)) {
    if (inUse.has(device)) continue;
    // On a device something still holds (a dying sandbox), this only marks it to
    // detach itself when released.
    const res = await run(losetup, ["-d", device]);
    if (res.code === 0) {
      logger.info({ device, file }, "detached a loop device left attached under the data dir");
      released.detached.push(device);
    }
  }
  return released;
}

/**
 * Wait (up to `timeoutMs`) until no loop device is backed by an image under the
 * data dir: the kernel detaches an unmounted image's device asynchronously, and
 * a gateway that says it has stopped should leave none behind.
 */
export async function waitLoopsDetached(dataDir: string, timeoutMs: number): Promise<string[]> {
  if (process.platform !== "linux") return [];
  const root = await realpath(dataDir).catch(() => undefined);
  if (!root) return [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = [...(await loopDevices(root)).keys()];
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The last step of a gateway that stops (or fails to start): release anything
 * still mounted under its data dir and give the kernel a moment to detach the
 * loop devices, so that nothing is left once the process is gone.
 */
export async function leaveNothingMounted(dataDir: string, logger: Logger): Promise<void> {
  await releaseLeftovers(dataDir, logger);
  const attached = await waitLoopsDetached(dataDir, 5_000);
  if (attached.length) logger.warn({ attached }, "loop devices still attached at shutdown");
}
