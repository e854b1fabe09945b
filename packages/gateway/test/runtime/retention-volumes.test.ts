import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { afterEach, describe, expect, it } from "vitest";
import { pruneVolume } from "../../src/runtime/retention-volumes.ts";
import { VolumeSnapshots } from "../../src/sandbox/snapshots.ts";

/**
 * The retention sweep's part in a stopped sandbox's volume, on real files and
 * real snapshots: what is older than its cutoff goes, the worker's own state
 * stays, and a disk image it cannot look into goes only whole.
 */

const DAY = 86_400_000;
const NOW = Date.now();
const ID = "sb_retentiontest000000000000";
let root: string;

function setUp() {
  root = mkdtempSync(join(tmpdir(), "lobu-retention-volume-"));
  const volume = join(root, "volumes", ID);
  const snapshots = new VolumeSnapshots({
    root: join(root, "snapshots"),
    logger: createLogger("test", { level: "silent" }),
  });
  return { volume, snapshots };
}

function file(path: string, ageDays: number) {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, "x");
  const at = new Date(NOW - ageDays * DAY);
  utimesSync(path, at, at);
}

afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("pruning a stopped volume", () => {
  it("deletes old files and transcripts, keeps recent ones and the worker's state, and drops emptied folders", async () => {
    const { volume, snapshots } = setUp();
    file(join(volume, "notes", "old.md"), 40);
    file(join(volume, "deep", "er", "old.bin"), 40);
    file(join(volume, "recent.md"), 1);
    file(join(volume, ".lobu", "sessions", "old.jsonl"), 10);
    file(join(volume, ".lobu", "sessions", "new.jsonl"), 1);
    file(join(volume, ".lobu", "turns.json"), 400);
    file(join(volume, ".lobu", "pi", "settings.json"), 400);
    const report = await pruneVolume(volume, snapshots, ID, {
      files: NOW - 30 * DAY,
      transcripts: NOW - 7 * DAY,
    });
    expect(report).toMatchObject({ files: 2, transcripts: 1, images: 0 });
    expect(existsSync(join(volume, "notes"))).toBe(false);
    expect(existsSync(join(volume, "deep"))).toBe(false);
    expect(existsSync(join(volume, "recent.md"))).toBe(true);
    expect(existsSync(join(volume, ".lobu", "sessions", "old.jsonl"))).toBe(false);
    expect(existsSync(join(volume, ".lobu", "sessions", "new.jsonl"))).toBe(true);
    expect(existsSync(join(volume, ".lobu", "turns.json"))).toBe(true);
    expect(existsSync(join(volume, ".lobu", "pi", "settings.json"))).toBe(true);
  });

  it("never follows a symlink out of the volume", async () => {
    const { volume, snapshots } = setUp();
    const outside = join(root, "outside");
    file(join(outside, "precious.txt"), 400);
    mkdirSync(volume, { recursive: true });
    symlinkSync(outside, join(volume, "link"));
    // Everything in the volume counts as old: the link goes, what it points at stays.
    await pruneVolume(volume, snapshots, ID, { files: NOW + DAY });
    expect(existsSync(join(volume, "link"))).toBe(false);
    expect(existsSync(join(outside, "precious.txt"))).toBe(true);
  });

  it("drops snapshots taken before the later cutoff, and keeps newer ones", async () => {
    const { volume, snapshots } = setUp();
    file(join(volume, "a.txt"), 0);
    const first = await snapshots.take(ID, volume);
    const second = await snapshots.take(ID, volume);
    const report = await pruneVolume(volume, snapshots, ID, {
      files: NOW - 30 * DAY,
      transcripts: second.at,
    });
    expect(report.snapshots).toBe(1);
    expect((await snapshots.list(ID)).map((s) => s.name)).toEqual([second.name]);
    expect(first.at).toBeLessThan(second.at);
  });

  it("deletes a stopped disk image only when it was last written before both cutoffs", async () => {
    const { volume, snapshots } = setUp();
    mkdirSync(volume, { recursive: true });
    file(`${volume}.img`, 20);
    // Older than the transcripts' cutoff only: its files may still be kept, so it stays.
    let report = await pruneVolume(volume, snapshots, ID, {
      files: NOW - 30 * DAY,
      transcripts: NOW - 7 * DAY,
    });
    expect(report.images).toBe(0);
    expect(existsSync(`${volume}.img`)).toBe(true);
    // Only one kind set: the other is kept forever, so the image stays too.
    report = await pruneVolume(volume, snapshots, ID, { transcripts: NOW - DAY });
    expect(existsSync(`${volume}.img`)).toBe(true);
    report = await pruneVolume(volume, snapshots, ID, {
      files: NOW - 10 * DAY,
      transcripts: NOW - 7 * DAY,
    });
    expect(report.images).toBe(1);
    expect(existsSync(`${volume}.img`)).toBe(false);
  });
});
