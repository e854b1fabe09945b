import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bestEffort, type FailureLog, ignoreGone, isGone, settled } from "../src/best-effort.ts";
import { createLogger } from "../src/log.ts";

/** A real pino logger writing into an array, one parsed JSON line per entry. */
function capturedLog(): { log: FailureLog; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("test", {
    level: "debug",
    destination: { write: (line: string) => lines.push(JSON.parse(line)) },
  });
  return { log, lines };
}

const PINO_LEVEL = { debug: 20, warn: 40, error: 50 } as const;
const dir = mkdtempSync(join(tmpdir(), "lobu-best-effort-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("bestEffort", () => {
  it("logs what was lost, with its context and the error, at warn, and lets the caller go on", async () => {
    const { log, lines } = capturedLog();
    const missing = join(dir, "never-made");
    const result = await rmdir(missing).catch(
      bestEffort(log, "temporary directory left behind", { dir: missing }),
    );
    expect(result).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: PINO_LEVEL.warn,
      msg: "temporary directory left behind",
      dir: missing,
    });
    // The message, and the code when the message does not carry it already.
    expect(lines[0]!.err).toMatch(/ENOENT/);
  });

  it("logs at the level asked for, names the code of a message without it, and takes non-errors", () => {
    const { log, lines } = capturedLog();
    bestEffort(
      log,
      "audit record lost",
      { action: "secret.set" },
      { level: "error" },
    )(Object.assign(new Error("connection is closed"), { code: "ECONNREFUSED" }));
    bestEffort(log, "cosmetic", {}, { level: "debug" })("a string was thrown");
    expect(lines).toEqual([
      expect.objectContaining({
        level: PINO_LEVEL.error,
        msg: "audit record lost",
        action: "secret.set",
        err: "connection is closed (ECONNREFUSED)",
      }),
      expect.objectContaining({
        level: PINO_LEVEL.debug,
        msg: "cosmetic",
        err: "a string was thrown",
      }),
    ]);
  });

  it("works with console as the log (the browser bundle's)", () => {
    const calls: unknown[][] = [];
    const fake = { ...console, warn: (...args: unknown[]) => calls.push(args) };
    bestEffort(fake, "logout not confirmed")(new Error("offline"));
    expect(calls).toEqual([[{ err: "offline" }, "logout not confirmed"]]);
  });
});

describe("ignoreGone", () => {
  it("swallows only 'already gone' errors", async () => {
    await expect(rmdir(join(dir, "gone")).catch(ignoreGone)).resolves.toBeUndefined();
    const full = join(dir, "full");
    mkdirSync(full);
    writeFileSync(join(full, "f"), "x");
    await expect(rmdir(full).catch(ignoreGone)).rejects.toMatchObject({ code: "ENOTEMPTY" });
    expect(() => ignoreGone(new Error("no code"))).toThrow("no code");
    expect(() => ignoreGone("thrown string")).toThrow();
    for (const code of ["ENOENT", "ESRCH", "EPIPE", "ECONNRESET", "ERR_SERVER_NOT_RUNNING"])
      expect(isGone(Object.assign(new Error(code), { code }))).toBe(true);
    expect(isGone(Object.assign(new Error("denied"), { code: "EACCES" }))).toBe(false);
    expect(isGone(null)).toBe(false);
  });
});

describe("settled", () => {
  it("resolves once the work has finished either way, and for no work at all", async () => {
    await expect(settled(Promise.reject(new Error("the starter reports this")))).resolves.toBe(
      undefined,
    );
    await expect(settled(Promise.resolve(42))).resolves.toBe(undefined);
    await expect(settled(undefined)).resolves.toBe(undefined);
  });
});
