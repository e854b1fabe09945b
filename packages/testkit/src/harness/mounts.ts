import { readdirSync, readFileSync, realpathSync } from "node:fs";

/**
 * What a gateway has mounted under its data dir, as the host sees it: mount
 * points from /proc/self/mountinfo and loop devices (from sysfs) whose backing
 * file is there. Tests use these to check that a stopped gateway leaves nothing
 * behind.
 */

const real = (dir: string) => {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
};

const unescapeOctal = (s: string) =>
  s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Mount points at or under `dir`. */
export function mountsUnder(dir: string): string[] {
  const root = real(dir);
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => unescapeOctal(line.split(" ")[4] ?? ""))
    .filter((m) => m === root || m.startsWith(`${root}/`));
}

/** Attached loop devices whose backing file is under `dir` (`/dev/loopN → file`). */
export function loopDevicesUnder(dir: string): string[] {
  const root = real(dir);
  const out: string[] = [];
  for (const name of readdirSync("/sys/block").filter((n) => /^loop\d+$/.test(n))) {
    let file: string;
    try {
      file = readFileSync(`/sys/block/${name}/loop/backing_file`, "utf8").trim();
    } catch {
      continue; // not attached
    }
    if (file.startsWith(`${root}/`)) out.push(`/dev/${name} → ${file}`);
  }
  return out;
}
