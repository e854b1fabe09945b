import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "@lobu/core";
import { createLocalPackageSet, LOBU_BIN, startGatewayProcess } from "@lobu/testkit";
import { describe, expect, it } from "vitest";
import { type Check, verdict } from "../src/commands/doctor.ts";
import { npxLobu } from "../src/commands/init.ts";
import { allCommands, buildProgram } from "../src/program.ts";

function lobu(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string | undefined>; input?: string } = {},
) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [LOBU_BIN, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    // Without input, stdin is at its end at once (as with </dev/null).
    child.stdin.end(opts.input);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    // "close", not "exit": at "exit" the last output may still be unread in the pipes.
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A TCP port something else listens on (closed by the returned function). */
async function busyPort(): Promise<{ port: number; close: () => void }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

/** A gateway with the unisolated driver: these tests are about the CLI, not sandboxes. */
const HOST_DRIVER = '[sandbox]\ndriver = "host"\nallow_unsandboxed = true\n';

describe("lobu CLI", () => {
  it("explains itself with --help", async () => {
    const r = await lobu(["--help"]);
    expect(r.code).toBe(0);
    for (const cmd of ["init", "run", "chat", "doctor", "sandboxes", "token", "answer", "agents"]) {
      expect(r.stdout).toContain(cmd);
    }
    // Command groups show their subcommands, exec included.
    expect(r.stdout).toMatch(/^ {2}sandboxes list\|stop\|reset\|exec /m);
    expect(r.stdout).toMatch(/^ {2}token create\|list\|revoke /m);
    const chat = await lobu(["chat", "--help"]);
    expect(chat.stdout).toContain("--message");
    expect(chat.stdout).toContain("--gateway");
    const link = await lobu(["settings-link", "--help"]);
    expect(link.stdout).toMatch(/-u, --user <id> +the user \(required\)/);
  });

  it("every command's --help lists its subcommands, marks required options and describes its arguments", () => {
    const program = buildProgram(() => async () => {});
    const rootHelp = program.helpInformation();
    for (const cmd of allCommands(program)) {
      const help = cmd.helpInformation();
      const name = cmd.name();
      for (const sub of cmd.commands) {
        expect(help, `${name} --help`).toContain(sub.name());
        if (cmd === program) continue;
        // A group's subcommands are visible from the top level too.
        expect(rootHelp, `lobu --help lists ${name} ${sub.name()}`).toMatch(
          new RegExp(`^ {2}${name} [a-z|-]*\\b${sub.name()}\\b`, "m"),
        );
      }
      for (const opt of cmd.options) {
        expect(opt.description, `${name} ${opt.flags}`).not.toBe("");
        if (opt.mandatory) expect(opt.description, `${name} ${opt.flags}`).toMatch(/\(required\)$/);
      }
      for (const arg of cmd.registeredArguments)
        expect(arg.description, `${name} <${arg.name()}>`).not.toBe("");
    }
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

  it("says `npx lobu` only where npx finds this lobu, and names the installation elsewhere", () => {
    expect(npxLobu("/srv/app", "/srv/app")).toBe("npx lobu");
    expect(npxLobu("/srv/app/bots/one", "/srv/app")).toBe("npx lobu");
    expect(npxLobu("/srv/application", "/srv/app")).toBe("npx --prefix /srv/app lobu");
    expect(npxLobu("/home/me/bot", "/opt/my lobu")).toBe('npx --prefix "/opt/my lobu" lobu');
  });

  it("init creates a missing directory and says how to go on with npx", async () => {
    const parent = mkdtempSync(join(tmpdir(), "lobu-init-"));
    const r = await lobu(["init", "new/project"], { cwd: parent });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(() =>
      parseConfig(readFileSync(join(parent, "new/project/lobu.toml"), "utf8")),
    ).not.toThrow();
    expect(r.stdout).toContain("put a provider key in new/project/.env");
    // A folder outside the checkout: a bare `npx lobu` there would fetch "lobu" from the registry.
    const checkout = join(import.meta.dirname, "../../..");
    expect(r.stdout).toContain(`\`cd new/project && npx --prefix ${checkout} lobu run\``);
    expect(r.stdout).toContain(`\`npx --prefix ${checkout} lobu chat\``);
    writeFileSync(join(parent, "file"), "");
    const notDir = await lobu(["init", "file"], { cwd: parent });
    expect(notDir.code).toBe(2);
    expect(notDir.stderr).toMatch(/exists and is not a directory/);
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
    // Warnings are counted in the verdict, never "all checks passed".
    expect(r.stdout).not.toMatch(/All checks passed/);
    expect(r.stdout.trim().split("\n").at(-1)).toMatch(
      /^(No problems, \d+ warnings? \(!\): Lobu runs|\d+ problems? \(✗\) and \d+ warnings? \(!\))/,
    );
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

  it("doctor fails on a lobu.toml that `lobu run` would refuse, naming what is missing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-refs-"));
    writeFileSync(
      join(dir, "lobu.toml"),
      `${HOST_DRIVER}[agents.helper]\nprovider = "nope"\nskills = ["ghost"]\n`,
    );
    const r = await lobu(["doctor", "--offline", "--data-dir", join(dir, "data")], { cwd: dir });
    expect(r.code, r.stdout).toBe(1);
    expect(r.stdout).toMatch(/^✗ config .*lobu\.toml: `lobu run` refuses it$/m);
    expect(r.stdout).toMatch(/agents\.helper: provider "nope" is not defined/);
    expect(r.stdout).toMatch(/agents\.helper: skill "ghost" is not defined/);
    // A schema error carries its hint too.
    writeFileSync(join(dir, "lobu.toml"), '[agents.helper]\nprovder = "x"\n');
    const typo = await lobu(["doctor", "--offline", "--data-dir", join(dir, "data")], { cwd: dir });
    expect(typo.code).toBe(1);
    expect(typo.stdout).toMatch(
      /✗ config invalid\n.*unknown key "provder".*\n.*docs\/configuration\.md/,
    );
  });

  it("doctor reports on the machine and exits 0 when everything works", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-"));
    const r = await lobu(["doctor", "--offline", "--data-dir", join(dir, "data")], { cwd: dir });
    expect(r.stdout).toMatch(/✓ Node\.js v24/);
    expect(r.stdout).toMatch(/sandbox driver "process": isolated/);
    expect(r.code).toBe(0);
  });
});

describe("doctor's Nix check", () => {
  it("checks Nix, its store and the package set when packages are on", async () => {
    const set = createLocalPackageSet();
    const dir = mkdtempSync(join(tmpdir(), "lobu-doctor-nix-"));
    try {
      writeFileSync(join(dir, "lobu.toml"), set.toml());
      const r = await lobu(["doctor", "--offline", "--data-dir", join(dir, "data")], { cwd: dir });
      expect(r.stdout).toMatch(/^✓ Nix \d+\.\d+(\.\d+)? \(\/.*\)$/m);
      expect(r.stdout).toContain(`✓ Nix store ${set.storeDir} is writable and builds run`);
      expect(r.stdout).toContain(`✓ package set ${set.path}: 4 top-level names`);
      expect(r.code).toBe(0);

      // A set that does not evaluate is a problem, with what to check.
      writeFileSync(join(dir, "lobu.toml"), set.toml().replace(set.path, join(dir, "missing")));
      const bad = await lobu(["doctor", "--offline", "--data-dir", join(dir, "data")], {
        cwd: dir,
      });
      expect(bad.stdout).toContain(`✗ package set ${join(dir, "missing")} does not evaluate`);
      expect(bad.stdout).toContain("check packages.nixpkgs in lobu.toml");
      expect(bad.code).toBe(1);
    } finally {
      set.remove();
    }
  });
});

describe("doctor's verdict", () => {
  const checks = (...levels: Check["level"][]): Check[] =>
    levels.map((level, i) => ({ level, title: `check ${i}` }));
  it("says all passed only when nothing warned, and counts warnings and problems", () => {
    expect(verdict(checks("ok", "ok"))).toBe("All checks passed.");
    expect(verdict(checks("ok", "warn"))).toBe(
      "No problems, 1 warning (!): Lobu runs, but read the warnings above.",
    );
    expect(verdict(checks("warn", "fail", "warn", "fail"))).toBe(
      "2 problems (✗) and 2 warnings (!): fix the problems before `lobu run`.",
    );
  });
});

describe("lobu run", () => {
  it("refuses a data dir another gateway uses, naming it, before touching anything", async () => {
    const gw = await startGatewayProcess({ toml: HOST_DRIVER });
    try {
      const config = join(gw.dataDir, "lobu.toml");
      const r = await lobu(["run", "--config", config, "--data-dir", gw.dataDir, "--port", "0"], {
        cwd: gw.dataDir,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `lobu: the data dir ${gw.dataDir} is in use by a gateway (pid ${gw.child.pid}, since`,
      );
      expect(r.stderr).toContain(`, ${gw.url})`);
      expect(r.stderr).toMatch(
        /hint: Stop it first \(kill \d+\), or give this one a data dir of its own/,
      );
      // Refused first: no store opened, no proxy started, no sandbox probed.
      expect(r.stderr).not.toMatch(/opening|egress|sandbox driver/);
      expect(r.stdout).toBe("");
      // The first gateway is unharmed.
      expect((await gw.api("/readyz")).status).toBe(200);

      // Master-key rotation respects the same lock: it must not run under a gateway.
      const rotate = await lobu(["master-key", "rotate", "--data-dir", gw.dataDir], {
        cwd: gw.dataDir,
        env: { LOBU_MASTER_KEY: "" },
      });
      expect(rotate.code).toBe(1);
      expect(rotate.stderr).toMatch(/is in use by a gateway \(pid \d+/);
      expect(existsSync(join(gw.dataDir, "master.key.next"))).toBe(false);
    } finally {
      await gw.stop();
    }
  });

  it("fails at once on a busy port, before opening the store, and suggests --port", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lobu-port-"));
    const busy = await busyPort();
    try {
      const r = await lobu(["run", "--data-dir", join(dir, "data"), "--port", String(busy.port)], {
        cwd: dir,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`lobu: port ${busy.port} on 127.0.0.1 is already in use`);
      expect(r.stderr).toContain(`\`lobu run --port ${busy.port + 1}\``);
      expect(r.stderr).not.toMatch(/opening|egress|sandbox driver/);
      expect(existsSync(join(dir, "data", "lobu.db"))).toBe(false);
    } finally {
      busy.close();
    }
  });

  it("prints its startup summary as one block, the log lines after it (readable or JSON)", async () => {
    for (const format of ["pretty", "json"] as const) {
      const dir = mkdtempSync(join(tmpdir(), "lobu-banner-"));
      writeFileSync(join(dir, "lobu.toml"), HOST_DRIVER);
      // stdout and stderr into one pipe, as a terminal shows them.
      const child = spawn(
        "sh",
        [
          "-c",
          'exec "$@" 2>&1',
          "sh",
          process.execPath,
          LOBU_BIN,
          "run",
          "--data-dir",
          join(dir, "data"),
          "--port",
          "0",
        ],
        { cwd: dir, env: { ...process.env, LOBU_LOG_LEVEL: "info", LOBU_LOG_FORMAT: format } },
      );
      let out = "";
      await new Promise<void>((started) =>
        child.stdout.on("data", (d) => {
          out += d;
          if (/gateway started/.test(out)) started();
        }),
      );
      const closed = new Promise((r) => child.once("close", r));
      child.kill("SIGTERM");
      await closed;
      const lines = out.split("\n");
      const first = lines.findIndex((l) => l.startsWith("Lobu gateway listening on"));
      // The folder is outside the checkout: the hint names the installation (a bare `npx lobu` there would fetch "lobu" from the registry).
      const checkout = join(import.meta.dirname, "../../..");
      const last = lines.findIndex((l) => l.startsWith(`Try: npx --prefix ${checkout} lobu chat`));
      expect(first, out).toBeGreaterThan(-1);
      expect(last - first, out).toBeGreaterThan(5);
      for (const line of lines.slice(first + 1, last)) expect(line, out).toMatch(/^ {2}[a-z]/);
      const logs = lines.slice(last + 1).filter((l) => /gateway started/.test(l));
      expect(logs, out).toHaveLength(1);
      if (format === "pretty") {
        expect(logs[0]).toMatch(
          /^\d\d:\d\d:\d\d INFO {2}gateway started url=http:\/\/127\.0\.0\.1:\d+ /,
        );
        expect(out).not.toMatch(/^\{/m);
      } else {
        expect(JSON.parse(logs[0]!)).toMatchObject({ level: 30, msg: "gateway started" });
      }
    }
  });
});

describe("lobu agents", () => {
  it("shows the provider and model an agent without its own uses, marked (default)", async () => {
    const gw = await startGatewayProcess({
      toml: HOST_DRIVER,
      env: { ANTHROPIC_API_KEY: "sk-ant-agents-test-0123456789", OPENAI_API_KEY: undefined },
    });
    try {
      const r = await lobu(["agents", "--gateway", gw.url, "--token", gw.token]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(
        /^default +default +anthropic \(default\) +claude-sonnet-4-5 \(default\) +implicit/m,
      );
      const json = JSON.parse(
        (await lobu(["agents", "--json", "--gateway", gw.url, "--token", gw.token])).stdout,
      ) as { id: string; provider?: string; effective: { provider: string; model: string } }[];
      expect(json[0]).toMatchObject({
        id: "default",
        effective: { provider: "anthropic", model: "claude-sonnet-4-5" },
      });
      expect(json[0]!.provider).toBeUndefined();
    } finally {
      await gw.stop();
    }
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

    // Something unrelated answers on the port lobu.toml names: not a gateway on this data dir.
    const other = createHttpServer((_req, res) => res.end('{"ok":true}'));
    await new Promise<void>((r) => other.listen(0, "127.0.0.1", () => r()));
    writeFileSync(
      join(dir, "lobu.toml"),
      `[gateway]\nport = ${(other.address() as AddressInfo).port}\n`,
    );
    const r = await lobu(["master-key", "rotate", "--data-dir", dataDir], {
      cwd: dir,
      env,
    }).finally(() => other.close());
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

describe("lobu people", () => {
  it("exports a person to a private file and erases them only with --yes", async () => {
    const gw = await startGatewayProcess({
      toml: HOST_DRIVER,
      env: { ANTHROPIC_API_KEY: "sk-ant-people-test-0123456789", OPENAI_API_KEY: undefined },
    });
    const conn = ["--gateway", gw.url, "--token", gw.token];
    try {
      const out = join(mkdtempSync(join(tmpdir(), "lobu-people-")), "export.json");
      const exported = await lobu(["people", "export", "api::zoe", "-o", out, ...conn]);
      expect(exported.stderr).toBe("");
      expect(exported.code).toBe(0);
      expect(statSync(out).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(out, "utf8"))).toMatchObject({ userKey: "api::zoe" });

      const unconfirmed = await lobu(["people", "delete", "api::zoe", ...conn]);
      expect(unconfirmed.code).not.toBe(0);
      expect(unconfirmed.stderr).toMatch(/cannot be undone; run it again with --yes/);

      const erased = await lobu(["people", "delete", "api::zoe", "--yes", ...conn]);
      expect(erased.code).toBe(0);
      expect(erased.stdout).toMatch(/^erased api::zoe \(audited as person:[0-9a-f]{24}\):/);

      const bad = await lobu(["people", "export", "../../etc/passwd", ...conn]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/is not a user key/);
    } finally {
      await gw.stop();
    }
  });
});

describe("lobu secrets", () => {
  it("sets a secret from stdin (never an argument), lists it masked, and deletes it", async () => {
    const gw = await startGatewayProcess({
      toml: `${HOST_DRIVER}[agents.ops]\n`,
      env: { ANTHROPIC_API_KEY: "sk-ant-secrets-test-0123456789", OPENAI_API_KEY: undefined },
    });
    const conn = ["--gateway", gw.url, "--token", gw.token];
    const value = "ghp_secretvalue0123456789abcdef";
    try {
      const set = await lobu(["secrets", "set", "DOCS_TOKEN", ...conn], { input: `${value}\n` });
      expect(set.stderr).toBe("");
      expect(set.code).toBe(0);
      expect(set.stdout).toMatch(/^stored DOCS_TOKEN \(version 1, /);
      const agent = await lobu(["secrets", "set", "github", "--agent", "ops", ...conn], {
        input: value,
      });
      expect(agent.code, agent.stderr).toBe(0);

      const list = await lobu(["secrets", "list", ...conn]);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(/^DOCS_TOKEN +1 /m);
      expect(list.stdout).not.toContain(value);
      const agentList = await lobu(["secrets", "list", "--agent", "ops", "--json", ...conn]);
      expect(JSON.parse(agentList.stdout)).toEqual([expect.objectContaining({ name: "github" })]);
      expect(agentList.stdout).not.toContain(value);

      const empty = await lobu(["secrets", "set", "EMPTY", ...conn], { input: "" });
      expect(empty.code).not.toBe(0);
      expect(empty.stderr).toMatch(/no value on stdin/);

      expect((await lobu(["secrets", "delete", "DOCS_TOKEN", ...conn])).code).toBe(0);
      expect((await lobu(["secrets", "list", "--json", ...conn])).stdout).not.toContain(
        "DOCS_TOKEN",
      );
      const gone = await lobu(["secrets", "delete", "DOCS_TOKEN", ...conn]);
      expect(gone.code).not.toBe(0);
    } finally {
      await gw.stop();
    }
  });
});
