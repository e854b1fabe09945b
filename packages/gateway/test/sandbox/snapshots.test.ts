import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { volumeImagePath } from "../../src/sandbox/identity.ts";
import { snapshotTime, VolumeSnapshots } from "../../src/sandbox/snapshots.ts";
import { copyTree } from "../../src/sandbox/tree-copy.ts";
import { scratch, testLogger } from "./helpers.ts";

/** Volume snapshots for self-repair, on real directories. */

const { dir, cleanup } = scratch("lobu-snap-");
afterAll(cleanup);
let n = 0;

function volume(files: Record<string, string> = {}): string {
  const v = join(dir, `vol-${n++}`);
  mkdirSync(v, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(v, name, ".."), { recursive: true });
    writeFileSync(join(v, name), content);
    // Files that existed a while before any snapshot (a fresh mtime counts as possibly changed).
    const anHourAgo = Date.now() / 1000 - 3600;
    utimesSync(join(v, name), anHourAgo, anHourAgo);
  }
  return v;
}

const snaps = () =>
  new VolumeSnapshots({ root: join(dir, `snaps-${n++}`), keep: 3, logger: testLogger() });

describe("volume snapshots", () => {
  it("copies a volume, shares unchanged files with the previous snapshot and keeps the last K", async () => {
    const s = snaps();
    const v = volume({ "a.txt": "alpha", "src/b.txt": "beta", ".tmp/scratch": "x" });
    const first = await s.take("sb_1", v);
    expect(first).toMatchObject({ files: 2, linked: 0 });
    writeFileSync(join(v, "a.txt"), "ALPHA!");
    const second = await s.take("sb_1", v);
    expect(second).toMatchObject({ files: 2, linked: 1, bytesCopied: 6 });
    const dirOf = (name: string) => join(s.root, "sb_1", name);
    // Unchanged: the same inode in both snapshots. Changed: a copy of its own.
    expect(statSync(join(dirOf(second.name), "src/b.txt")).ino).toBe(
      statSync(join(dirOf(first.name), "src/b.txt")).ino,
    );
    expect(readFileSync(join(dirOf(first.name), "a.txt"), "utf8")).toBe("alpha");
    expect(readFileSync(join(dirOf(second.name), "a.txt"), "utf8")).toBe("ALPHA!");
    // Never a link into the live volume: the agent could rewrite the snapshot through it.
    expect(statSync(join(dirOf(second.name), "a.txt")).ino).not.toBe(
      statSync(join(v, "a.txt")).ino,
    );
    // Scratch space is not kept.
    expect(existsSync(join(dirOf(first.name), ".tmp"))).toBe(false);

    await s.take("sb_1", v);
    await s.take("sb_1", v);
    const list = await s.list("sb_1");
    expect(list).toHaveLength(3);
    expect(list[0]!.at).toBeGreaterThan(list[1]!.at);
    expect(existsSync(dirOf(first.name))).toBe(false);
    expect(snapshotTime(Date.UTC(2026, 10, 26, 1, 22))).toBe("2026-11-26 01:22 UTC");
  });

  it("copies links as links and skips special files: a snapshot never follows the agent's links", async () => {
    const s = snaps();
    const secret = volume({ "host-secret.txt": "do-not-copy" });
    const v = volume({ "ok.txt": "fine" });
    symlinkSync(secret, join(v, "dir-link"));
    symlinkSync(join(secret, "host-secret.txt"), join(v, "file-link"));
    spawnSync("mkfifo", [join(v, "pipe")]);
    writeFileSync(join(v, "setuid"), "x");
    chmodSync(join(v, "setuid"), 0o4755);
    const snap = await s.take("sb_links", v);
    const at = join(s.root, "sb_links", snap.name);
    expect(readlinkSync(join(at, "dir-link"))).toBe(secret);
    expect(lstatSync(join(at, "file-link")).isSymbolicLink()).toBe(true);
    expect(existsSync(join(at, "pipe"))).toBe(false);
    expect(statSync(join(at, "setuid")).mode & 0o7777).toBe(0o755);
    const all = spawnSync("grep", ["-r", "do-not-copy", at]).stdout.toString();
    expect(all).toBe("");
  });

  it.skipIf(process.platform !== "linux")(
    "never copies what a directory swapped for a link mid-copy points at",
    async () => {
      const secret = volume({ "host-secret.txt": "SWAPPED-IN-SECRET" });
      const v = volume();
      const target = join(v, "d");
      for (let i = 0; i < 200; i++) writeFileSync(join(v, `filler-${i}`), "f");
      // An agent process flipping d between a directory and a link to a host directory.
      const swapper = spawn(
        "sh",
        [
          "-c",
          `while :; do rm -rf "$1"; mkdir "$1"; echo inner > "$1/host-secret.txt"; rm -rf "$1"; ln -s "$2" "$1"; done`,
          "swap",
          target,
          secret,
        ],
        { stdio: "ignore" },
      );
      try {
        for (let i = 0; i < 25; i++) {
          const out = join(dir, `race-${n++}`);
          await copyTree(v, out);
          const found = spawnSync("grep", ["-r", "SWAPPED-IN-SECRET", out]).stdout.toString();
          expect(found).toBe("");
        }
      } finally {
        swapper.kill("SIGKILL");
      }
    },
  );

  it("restores the newest good snapshot, keeping the broken volume aside", async () => {
    const s = snaps();
    const v = volume({ "keep.txt": "v1" });
    await s.take("sb_r", v);
    writeFileSync(join(v, "keep.txt"), "v2");
    const good = await s.take("sb_r", v);
    writeFileSync(join(v, "keep.txt"), "broken");
    writeFileSync(volumeImagePath(v), "an old disk image");
    const restored = await s.restore("sb_r", v);
    expect(restored?.name).toBe(good.name);
    expect(readFileSync(join(v, "keep.txt"), "utf8")).toBe("v2");
    expect(existsSync(volumeImagePath(v))).toBe(false);
    const broken = join(s.root, "sb_r", "broken");
    expect(readFileSync(join(broken, "volume", "keep.txt"), "utf8")).toBe("broken");
    expect(readFileSync(join(broken, "volume.img"), "utf8")).toBe("an old disk image");

    // A snapshot that did not help is skipped from then on.
    await s.markBad("sb_r", good.name, "did not help");
    expect((await s.lastGood("sb_r"))?.name).not.toBe(good.name);
    await s.restore("sb_r", v);
    expect(readFileSync(join(v, "keep.txt"), "utf8")).toBe("v1");
    await s.markBad("sb_r", (await s.lastGood("sb_r"))!.name, "neither");
    expect(await s.restore("sb_r", v)).toBeUndefined();
    expect(readdirSync(v)).toEqual([]);
  });

  it("wipes a volume with its image and snapshots", async () => {
    const s = snaps();
    const v = volume({ "a.txt": "a" });
    await s.take("sb_w", v);
    writeFileSync(volumeImagePath(v), "img");
    await s.wipe("sb_w", v);
    expect(readdirSync(v)).toEqual([]);
    expect(existsSync(volumeImagePath(v))).toBe(false);
    expect(await s.list("sb_w")).toEqual([]);
  });

  it("refuses ids that are not sandbox ids", async () => {
    const s = snaps();
    await expect(s.take("../escape", volume())).rejects.toThrow(/invalid sandbox id/);
  });
});
