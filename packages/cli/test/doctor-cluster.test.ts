import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { clusterCheck } from "../src/commands/doctor.ts";

/** `[cluster]` in lobu.toml and what `lobu doctor` says about it (docs/deploy/multi-gateway.md). */

describe("[cluster]", () => {
  it("defaults to local volumes and a 30 s lease", () => {
    const { cluster } = parseConfig("");
    expect(cluster).toEqual({ lease: 30_000, volumes: "local" });
  });

  it("refuses shared volumes without an absolute path", () => {
    expect(() => parseConfig('[cluster]\nvolumes = "shared"')).toThrow(/volumes_path/);
    expect(() => parseConfig('[cluster]\nvolumes = "shared"\nvolumes_path = "rel/dir"')).toThrow(
      /absolute directory/,
    );
    expect(() => parseConfig('[cluster]\nvolumes = "s3"')).toThrow(/\[cluster\.s3\]/);
    expect(() => parseConfig('[cluster]\nvolumes = "nfs"')).toThrow(/cluster/);
    const s3 = parseConfig('[cluster]\nvolumes = "s3"\n[cluster.s3]\nbucket = "lobu-volumes"');
    expect(s3.cluster.s3).toEqual({
      bucket: "lobu-volumes",
      prefix: "",
      region: "us-east-1",
      force_path_style: false,
    });
  });

  it("doctor: says nothing on SQLite, warns about local volumes on Redis", () => {
    expect(clusterCheck(parseConfig(""))).toEqual([]);
    const redis = parseConfig('[store]\ndriver = "redis"');
    expect(clusterCheck(redis)).toEqual([
      expect.objectContaining({ level: "warn", title: expect.stringMatching(/data dir/) }),
    ]);
  });

  it("doctor: names the bucket of S3 volumes", () => {
    const s3 = parseConfig('[cluster]\nvolumes = "s3"\n[cluster.s3]\nbucket = "lobu-volumes"');
    expect(clusterCheck(s3)).toEqual([
      expect.objectContaining({ level: "ok", title: expect.stringMatching(/lobu-volumes/) }),
    ]);
  });

  it("doctor: checks the shared directory", () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-shared-"));
    try {
      const ok = parseConfig(`[cluster]\nvolumes = "shared"\nvolumes_path = "${dir}"`);
      expect(clusterCheck(ok)[0]?.level).toBe("ok");
      const gone = parseConfig(
        `[cluster]\nvolumes = "shared"\nvolumes_path = "${join(dir, "missing")}"`,
      );
      expect(clusterCheck(gone)[0]).toMatchObject({ level: "fail" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
