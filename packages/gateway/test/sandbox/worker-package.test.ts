import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { WorkerLauncher, workerEntry, workerRuntimeDirs } from "../../src/sandbox/launcher.ts";

const root = realpathSync(mkdtempSync(join(tmpdir(), "lobu-worker-pkg-")));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("the worker as a package", () => {
  it("resolves @lobu/worker's ./main, wherever it is installed", () => {
    expect(workerEntry()).toMatch(/\/worker\/src\/main\.ts$/);
    expect(new WorkerLauncher().entry).toBe(workerEntry());
  });

  it("shows sandboxes its package, every node_modules Node searches, and the packages linked there", () => {
    // An install laid out like an npm workspace: app/node_modules/@scope/worker → ../../packages/worker.
    const app = join(root, "app");
    const worker = join(app, "packages", "worker");
    const core = join(app, "packages", "core");
    for (const dir of [join(worker, "src"), join(worker, "node_modules", "dep"), core])
      mkdirSync(dir, { recursive: true });
    writeFileSync(join(worker, "package.json"), "{}");
    writeFileSync(join(worker, "src", "main.ts"), "");
    mkdirSync(join(app, "node_modules", "@scope"), { recursive: true });
    mkdirSync(join(app, "node_modules", "plain"));
    symlinkSync(worker, join(app, "node_modules", "@scope", "worker"));
    symlinkSync(core, join(app, "node_modules", "@scope", "core"));
    expect(workerRuntimeDirs(join(worker, "src", "main.ts")).sort()).toEqual(
      [worker, join(worker, "node_modules"), join(app, "node_modules"), core].sort(),
    );
  });
});
