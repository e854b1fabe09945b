import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadMasterKey, parseMasterKey, resolveMasterKey } from "../../src/secrets/master-key.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lobu-mk-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("master key", () => {
  it("reads LOBU_MASTER_KEY as base64, base64url or hex", () => {
    const raw = randomBytes(32);
    for (const text of [
      raw.toString("base64"),
      raw.toString("base64url"),
      raw.toString("hex"),
      ` ${raw.toString("hex")}\n`,
    ]) {
      const key = loadMasterKey({ dataDir: dir, env: { LOBU_MASTER_KEY: text } });
      expect(key.equals(raw)).toBe(true);
    }
    expect(
      resolveMasterKey({ dataDir: dir, env: { LOBU_MASTER_KEY: raw.toString("hex") } }).source,
    ).toBe("env");
  });

  it("rejects a malformed LOBU_MASTER_KEY with a message saying how to make one", () => {
    for (const bad of [
      "short",
      randomBytes(16).toString("base64"),
      randomBytes(33).toString("hex"),
      "zz".repeat(32),
    ]) {
      expect(() => loadMasterKey({ dataDir: dir, env: { LOBU_MASTER_KEY: bad } })).toThrow(
        /LOBU_MASTER_KEY is not a valid master key/,
      );
    }
    expect(() => parseMasterKey("nope", "LOBU_MASTER_KEY")).toThrow(
      expect.objectContaining({ hint: expect.stringMatching(/openssl rand -base64 32/) }),
    );
  });

  it("creates <dataDir>/master.key with mode 0600 on first run and reuses it", () => {
    const dataDir = join(dir, "nested", "data");
    const first = resolveMasterKey({ dataDir, env: {} });
    expect(first.created).toBe(true);
    expect(first.source).toBe("file");
    expect(first.key.length).toBe(32);
    const path = join(dataDir, "master.key");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, "utf8").trim()).toBe(first.key.toString("base64"));
    const second = resolveMasterKey({ dataDir, env: { LOBU_MASTER_KEY: "" } });
    expect(second.created).toBe(false);
    expect(second.key.equals(first.key)).toBe(true);
  });

  it("refuses a key file readable by group or others, saying how to fix it", () => {
    loadMasterKey({ dataDir: dir, env: {} });
    const path = join(dir, "master.key");
    for (const mode of [0o640, 0o604, 0o644]) {
      chmodSync(path, mode);
      expect(() => loadMasterKey({ dataDir: dir, env: {} })).toThrow(/readable by other users/);
      expect(() => loadMasterKey({ dataDir: dir, env: {} })).toThrow(
        expect.objectContaining({ hint: expect.stringContaining(`chmod 600 ${path}`) }),
      );
    }
    chmodSync(path, 0o600);
    expect(loadMasterKey({ dataDir: dir, env: {} }).length).toBe(32);
  });

  it("refuses a key file that does not hold a key", () => {
    writeFileSync(join(dir, "master.key"), "not a key\n", { mode: 0o600 });
    expect(() => loadMasterKey({ dataDir: dir, env: {} })).toThrow(
      /master\.key is not a valid master key/,
    );
  });
});
