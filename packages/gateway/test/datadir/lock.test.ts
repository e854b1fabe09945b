import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HOLDER_FILE, lockDataDir, lockDataDirShared, lockHolder } from "../../src/datadir/lock.ts";

/**
 * The data dir lock between real processes: another process holds it, is
 * killed, or was never there (a stale holder file, a reused pid).
 */

const LOCK_MODULE = resolve(import.meta.dirname, "../../src/datadir/lock.ts");
const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "lobu-lock-"));
  dirs.push(dir);
  return dir;
}

/** A separate process that takes the lock (`exclusive` or `shared`) and holds it until killed. */
async function holder(dir: string, mode: "exclusive" | "shared"): Promise<ChildProcess> {
  const take =
    mode === "exclusive"
      ? `m.lockDataDir(${JSON.stringify(dir)})`
      : `m.lockDataDirShared(${JSON.stringify(dir)})`;
  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const m = await import(${JSON.stringify(LOCK_MODULE)}); globalThis.held = ${take}; console.log("held"); setInterval(() => {}, 1000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  children.push(child);
  await new Promise<void>((ok, fail) => {
    child.stdout!.on("data", (d: Buffer) => d.toString().includes("held") && ok());
    child.once("exit", (code) => fail(new Error(`lock holder exited (${code})`)));
  });
  return child;
}

const killed = (child: ChildProcess) =>
  new Promise<void>((r) => {
    child.once("exit", () => r());
    child.kill("SIGKILL");
  });

describe("data dir lock", () => {
  it("refuses a second holder and names the process that has it", async () => {
    const dir = dataDir();
    const other = await holder(dir, "exclusive");
    let err: unknown;
    try {
      lockDataDir(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "data_dir_locked" });
    expect((err as Error).message).toContain(`a gateway (pid ${other.pid}`);
    expect((err as { hint: string }).hint).toContain(`kill ${other.pid}`);
    // Readers (lobu doctor) see that a gateway owns it.
    expect(lockDataDirShared(dir)).toBeUndefined();
    expect(lockHolder(dir)?.pid).toBe(other.pid);
  });

  it("is free the moment its holder is killed, with no stale lock to clear", async () => {
    const dir = dataDir();
    const other = await holder(dir, "exclusive");
    await killed(other);
    // The holder file it left names a dead process: not believed.
    expect(lockHolder(dir)).toBeUndefined();
    const lock = lockDataDir(dir);
    expect(lockHolder(dir)?.pid).toBe(process.pid);
    lock.release();
    expect(lockHolder(dir)).toBeUndefined();
  });

  it("does not believe a holder file whose pid now belongs to another process", async () => {
    const dir = dataDir();
    const unrelated = await holder(dataDir(), "shared");
    // A record naming a live pid, but with another start time: the pid was reused.
    writeFileSync(
      join(dir, HOLDER_FILE),
      JSON.stringify({
        pid: unrelated.pid,
        host: (await import("node:os")).hostname(),
        what: "gateway",
        since: 0,
        startTicks: 1,
      }),
    );
    expect(lockHolder(dir)).toBeUndefined();
    const lock = lockDataDir(dir);
    lock.release();
  });

  it("shared holders (lobu doctor) coexist, and keep a gateway from starting meanwhile", async () => {
    const dir = dataDir();
    const doctor = await holder(dir, "shared");
    const mine = lockDataDirShared(dir);
    expect(mine).toBeDefined();
    expect(() => lockDataDir(dir)).toThrow(/in use by another Lobu process/);
    mine!.release();
    await killed(doctor);
    lockDataDir(dir).release();
  });

  it("refuses a second gateway in the same process too", () => {
    const dir = dataDir();
    const lock = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(/this very process/);
    lock.release();
    lockDataDir(dir).release();
  });
});
