import { readFile } from "node:fs/promises";

export interface MountEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
  superOptions: string[];
}

const unescapeOctal = (s: string) =>
  s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Parsed /proc/self/mountinfo. */
export async function readMounts(): Promise<MountEntry[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const dash = line.indexOf(" - ");
    if (dash === -1) continue;
    const left = line.slice(0, dash).split(" ");
    const right = line.slice(dash + 3).split(" ");
    out.push({
      root: unescapeOctal(left[3] ?? "/"),
      mountPoint: unescapeOctal(left[4] ?? ""),
      fsType: right[0] ?? "",
      source: unescapeOctal(right[1] ?? ""),
      superOptions: (right[2] ?? "").split(","),
    });
  }
  return out;
}

export async function isMountPoint(path: string): Promise<boolean> {
  try {
    return (await readMounts()).some((m) => m.mountPoint === path);
  } catch {
    return false;
  }
}
