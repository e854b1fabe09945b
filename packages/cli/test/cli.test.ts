import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "@lobu/core";
import { LOBU_BIN } from "@lobu/testkit";
import { describe, expect, it } from "vitest";

function lobu(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [LOBU_BIN, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("lobu CLI", () => {
  it("explains itself with --help", async () => {
    const r = await lobu(["--help"]);
    expect(r.code).toBe(0);
    for (const cmd of ["init", "run", "chat", "doctor", "sandboxes", "token", "answer", "agents"]) {
      expect(r.stdout).toContain(cmd);
    }
    const chat = await lobu(["chat", "--help"]);
    expect(chat.stdout).toContain("--message");
    expect(chat.stdout).toContain("--gateway");
  });

  it("rejects unknown commands with a pointer to --help", async () => {
    const r = await lobu(["frobnicate"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unknown command/);
  });

  it("init writes a valid commented lobu.toml and a private .env, and will not overwrite", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-init-"));
    const r = await lobu(["init", dir]);
    expect(r.code).toBe(0);
    const toml = readFileSync(join(dir, "lobu.toml"), "utf8");
    expect(() => parseConfig(toml)).not.toThrow();
    expect(statSync(join(dir, ".env")).mode & 0o777).toBe(0o600);
    const again = await lobu(["init", dir]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exist; use --force/);
    expect((await lobu(["init", dir, "--force"])).code).toBe(0);
  });

  it("chat without a token says where to get one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-chat-"));
    const r = await lobu(["chat", "--message", "hi"], {
      cwd: dir,
      env: { LOBU_TOKEN: "", LOBU_DATA_DIR: "" },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no API token/);
  });

  it("run refuses an invalid lobu.toml with the key named", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-run-"));
    writeFileSync(join(dir, "lobu.toml"), '[gateway]\nport = "eighty"\n');
    const r = await lobu(["run", "--data-dir", join(dir, "data")], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/lobu\.toml: gateway\.port: .*expected number/);
    expect(existsSync(join(dir, "data", "lobu.db"))).toBe(false);
  });

  it("run refuses agents that name an undefined provider or skill", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-run-"));
    writeFileSync(
      join(dir, "lobu.toml"),
      '[agents.ops]\nprovider = "nope"\nskills = ["missing"]\n',
    );
    const r = await lobu(["run", "--data-dir", join(dir, "data")], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/lobu\.toml: agents\.ops: provider "nope" is not defined/);
    expect(r.stderr).toMatch(/lobu\.toml: agents\.ops: skill "missing" is not defined/);
    expect(existsSync(join(dir, "data"))).toBe(false);
  });

  it("doctor checks a Redis store and warns about settings that risk messages", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-redis-"));
    const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    writeFileSync(join(dir, "lobu.toml"), `[store]\ndriver = "redis"\nredis_url = "${url}"\n`);
    const r = await lobu(["doctor", "--offline", "--data-dir", join(dir, "data")], { cwd: dir });
    expect(r.stdout).toMatch(/✓ store: redis reachable/);
    // The test Redis runs without an append-only file: doctor says so (a warning, not a failure).
    expect(r.stdout).toMatch(/^! store: .*appendonly/m);
    const bad = join(dir, "bad");
    mkdirSync(bad);
    writeFileSync(
      join(bad, "lobu.toml"),
      '[store]\ndriver = "redis"\nredis_url = "redis://127.0.0.1:9"\n',
    );
    const down = await lobu(["doctor", "--offline", "--data-dir", join(bad, "data")], { cwd: bad });
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/✗ store: redis unreachable/);
  });

  it("doctor reports on the machine and exits 0 when everything works", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-"));
    const r = await lobu(["doctor", "--offline", "--data-dir", join(dir, "data")], { cwd: dir });
    expect(r.stdout).toMatch(/✓ Node\.js v24/);
    expect(r.stdout).toMatch(/sandbox driver "process": isolated/);
    expect(r.code).toBe(0);
  });
});

describe("lobu master-key rotate", () => {
  it("re-encrypts every secret under a new key and keeps the old key aside", async () => {
    const { createStore, resolveMasterKey, SecretStore } = await import("@lobu/gateway");
    const dir = mkdtempSync(join(tmpdir(), "lobu-rotate-"));
    const dataDir = join(dir, "data");
    const env = { LOBU_MASTER_KEY: "" };
    const old = resolveMasterKey({ dataDir, env });
    const ref = {
      scope: { kind: "agent" as const, agentId: "default" },
      name: "provider.anthropic",
    };
    let store = await createStore({ driver: "sqlite", path: join(dataDir, "lobu.db") });
    await new SecretStore(store.kv, old.key).set(ref, "sk-rotate-me-0123456789");
    await store.close();

    const r = await lobu(["master-key", "rotate", "--data-dir", dataDir], { cwd: dir, env });
    expect(r.stderr).toMatch(/1 re-encrypted/);
    expect(r.code).toBe(0);
    expect(existsSync(join(dataDir, "master.key.previous"))).toBe(true);
    expect(statSync(join(dataDir, "master.key")).mode & 0o777).toBe(0o600);

    const fresh = resolveMasterKey({ dataDir, env });
    expect(fresh.key.equals(old.key)).toBe(false);
    store = await createStore({ driver: "sqlite", path: join(dataDir, "lobu.db") });
    try {
      expect(await new SecretStore(store.kv, fresh.key).get(ref)).toBe("sk-rotate-me-0123456789");
      await expect(new SecretStore(store.kv, old.key).verifyMasterKey()).rejects.toThrow();
    } finally {
      await store.close();
    }
  });
});
