/**
 * What self-repair snapshots cost: a file-level snapshot of a volume (first,
 * then incremental with a few files changed: unchanged files are hard links to
 * the previous snapshot), a restore, and the disk they take; compared, as root,
 * with copying the whole loop-mounted disk image of the same volume (sparse
 * `cp`, and `tar -S`).
 *
 * `npm run bench -- sandbox-snapshots`
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "@lobu/core";
import { VolumeSnapshots } from "../packages/gateway/src/sandbox/snapshots.ts";
import { type BenchResult, type BenchRow, median, round } from "./lib.ts";

const FILES = 3000; // a source tree plus its dependencies
const FILE_BYTES = 4096;
const BIG_MB = 64; // one large artefact
const CHANGED = 10;
const RUNS = 5;
const MiB = 1024 * 1024;

const du = (path: string) => Number(execFileSync("du", ["-sb", path]).toString().split("\t")[0]);
const duDisk = (path: string) =>
  Number(execFileSync("du", ["-s", "-B1", path]).toString().split("\t")[0]);

function fill(dir: string): void {
  for (let i = 0; i < FILES; i++) {
    const sub = join(dir, `src/m${i % 50}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.ts`), Buffer.alloc(FILE_BYTES, i % 251));
  }
  writeFileSync(join(dir, "artifact.bin"), Buffer.alloc(BIG_MB * MiB, 7));
}

function time(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export default async function bench(): Promise<BenchResult> {
  const dir = mkdtempSync("/tmp/lobu-bench-snap-");
  const rows: BenchRow[] = [];
  try {
    const volume = join(dir, "volume");
    mkdirSync(volume);
    fill(volume);
    const size = du(volume);
    const snaps = new VolumeSnapshots({
      root: join(dir, "snapshots"),
      keep: 3,
      logger: createLogger("bench", { level: "warn" }),
    });
    const first: number[] = [];
    const incremental: number[] = [];
    const restore: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const id = `sb_run${r}`;
      first.push(await timeAsync(() => snaps.take(id, volume)));
      for (let i = 0; i < CHANGED; i++)
        writeFileSync(join(volume, `src/m${i}/f${i}.ts`), Buffer.alloc(FILE_BYTES, r + 1));
      incremental.push(await timeAsync(() => snaps.take(id, volume)));
      const target = join(dir, `restored-${r}`);
      restore.push(await timeAsync(() => snaps.restore(id, target)));
      rmSync(target, { recursive: true, force: true });
    }
    const oneRun = join(dir, "snapshots", "sb_run0");
    rows.push(
      {
        metric: "volume",
        value: round(size / MiB, 1),
        unit: "MB",
        note: `${FILES} files of ${FILE_BYTES / 1024} KB + one ${BIG_MB} MB file`,
      },
      { metric: "first snapshot (full copy) p50", value: round(median(first)), unit: "ms" },
      {
        metric: `incremental snapshot (${CHANGED} files changed) p50`,
        value: round(median(incremental)),
        unit: "ms",
        note: "unchanged files hard-linked to the previous snapshot",
      },
      { metric: "restore p50", value: round(median(restore)), unit: "ms" },
      {
        metric: "disk used by 2 snapshots of one volume",
        value: round(duDisk(oneRun) / MiB, 1),
        unit: "MB",
        note: "the second one costs only its changed files",
      },
    );

    if (process.getuid?.() === 0) {
      // The same content in a loop-mountable ext4 image (the process driver's disk quota).
      const image = join(dir, "volume.img");
      const mnt = join(dir, "mnt");
      mkdirSync(mnt);
      execFileSync("truncate", ["-s", "2G", image]);
      execFileSync("mkfs.ext4", ["-q", "-F", "-m", "0", image]);
      execFileSync("mount", ["-o", "loop", image, mnt]);
      try {
        execFileSync("cp", ["-a", `${volume}/.`, mnt]);
      } finally {
        execFileSync("umount", [mnt]);
      }
      const cps: number[] = [];
      const tars: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        const copy = join(dir, `img-${r}.img`);
        cps.push(time(() => execFileSync("cp", ["--sparse=always", image, copy])));
        rmSync(copy);
        const tar = join(dir, `img-${r}.tar`);
        tars.push(time(() => execFileSync("tar", ["-S", "-cf", tar, "-C", dir, "volume.img"])));
        rmSync(tar);
      }
      rows.push(
        {
          metric: "loop image (2 GB sparse): cp --sparse=always p50",
          value: round(median(cps)),
          unit: "ms",
          note: `image holds ${round(duDisk(image) / MiB, 1)} MB; a full copy every time`,
        },
        { metric: "loop image (2 GB sparse): tar -S p50", value: round(median(tars)), unit: "ms" },
      );
    }
    return {
      name: "sandbox-snapshots",
      rows,
      meta: { files: FILES, fileBytes: FILE_BYTES, bigMb: BIG_MB, changed: CHANGED, runs: RUNS },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
