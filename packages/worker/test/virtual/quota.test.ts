import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runTool, toolError, workspace } from "./helpers.ts";

const QUOTA = /disk quota exceeded/;

describe("volume quota", () => {
  it("refuses writes beyond maxTotalBytes with a clear error, and allows them again after rm", async () => {
    const ws = await workspace({ limits: { maxTotalBytes: 10_000 } });
    await runTool(ws, "write", { path: "a.txt", content: "a".repeat(6_000) });
    const message = await toolError(ws, "write", { path: "b.txt", content: "b".repeat(6_000) });
    expect(message).toMatch(QUOTA);
    expect(message).toContain("/workspace/b.txt");
    expect(existsSync(join(ws.volumeDir, "b.txt"))).toBe(false);

    const r = await ws.exec("printf '%6000s' x > c.txt");
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(QUOTA);
    const appended = await ws.exec("printf '%6000s' x >> a.txt");
    expect(appended.stderr).toMatch(QUOTA);
    expect(statSync(join(ws.volumeDir, "a.txt")).size).toBe(6_000);

    await ws.exec("rm a.txt");
    await runTool(ws, "write", { path: "b.txt", content: "b".repeat(6_000) });
    expect((await ws.usage()).bytes).toBeLessThanOrEqual(10_000);
  });

  it("counts /tmp, copies and edits against the same quota", async () => {
    const ws = await workspace({ limits: { maxTotalBytes: 10_000 } });
    await ws.exec("printf '%4000s' x > /tmp/scratch");
    expect((await ws.exec("cp /tmp/scratch one && cp /tmp/scratch two")).stderr).toMatch(QUOTA);
    await runTool(ws, "write", { path: "e.txt", content: "short" });
    const grow = await toolError(ws, "edit", {
      path: "e.txt",
      edits: [{ oldText: "short", newText: "x".repeat(5_000) }],
    });
    expect(grow).toMatch(QUOTA);
  });

  it("refuses a single file over maxFileBytes", async () => {
    const ws = await workspace({ limits: { maxFileBytes: 1_000 } });
    expect(await toolError(ws, "write", { path: "big", content: "x".repeat(2_000) })).toMatch(
      /file too large.*limited to 1000 bytes/,
    );
    expect((await ws.exec("printf '%2000s' x > big")).stderr).toMatch(/file too large/);
  });

  it("caps the number of files so empty files cannot flood the host", async () => {
    const ws = await workspace({ limits: { maxEntries: 20 } });
    const r = await ws.exec("for i in $(seq 1 40); do touch f$i || exit 1; done");
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/limited to 20 files and directories/);
    expect((await ws.usage()).entries).toBeLessThanOrEqual(20);
  });

  it("accounts existing files when a workspace wakes on a volume", async () => {
    const first = await workspace({ limits: { maxTotalBytes: 10_000 } });
    await first.exec("printf '%8000s' x > kept");
    await first.dispose();
    const again = await workspace({
      volumeDir: first.volumeDir,
      limits: { maxTotalBytes: 10_000 },
    });
    expect((await again.usage()).bytes).toBe(8_000);
    expect((await again.exec("printf '%4000s' x > more")).stderr).toMatch(QUOTA);
  });
});
