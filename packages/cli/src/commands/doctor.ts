import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { createLogger, errorMessage, isLobuError, type LobuConfig, loadConfig } from "@lobu/core";
import {
  checkNix,
  createDriver,
  createStore,
  type DataDirLock,
  describeHolder,
  lockDataDirShared,
  lockHolder,
  ProviderRegistry,
  redactUrl,
  resolveAutoDriver,
  SkillCatalog,
  unmetNeeds,
} from "@lobu/gateway";

type Level = "ok" | "warn" | "fail";
const MARK: Record<Level, string> = { ok: "✓", warn: "!", fail: "✗" };

export interface Check {
  level: Level;
  title: string;
  detail?: string;
}

function onPath(names: string[]): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    for (const n of names) if (dir && existsSync(join(dir, n))) return join(dir, n);
  }
  return undefined;
}

async function providerCheck(config: LobuConfig, offline: boolean): Promise<Check[]> {
  const providers = new ProviderRegistry(config);
  const out: Check[] = [];
  for (const p of providers.list()) {
    const key = p.keyEnv ? process.env[p.keyEnv] : undefined;
    if (!key) continue;
    if (offline) {
      out.push({
        level: "ok",
        title: `provider ${p.id}: key set (${p.keyEnv})`,
        detail: `${p.baseUrl} (not contacted: --offline)`,
      });
      continue;
    }
    if (p.type !== "anthropic" && p.type !== "openai") {
      // Signed and token-minted providers are checked by the relay on their first call.
      out.push({
        level: "ok",
        title: `provider ${p.id}: key set (${p.keyEnv})`,
        detail: `${p.baseUrl} (${p.type}: not contacted)`,
      });
      continue;
    }
    const url = p.type === "anthropic" ? `${p.baseUrl}/v1/models` : `${p.baseUrl}/models`;
    const headers: Record<string, string> =
      p.type === "anthropic"
        ? { "x-api-key": key, "anthropic-version": "2023-06-01" }
        : { authorization: `Bearer ${key}` };
    try {
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(8000) });
      if (res.ok)
        out.push({
          level: "ok",
          title: `provider ${p.id}: reachable, key accepted`,
          detail: p.baseUrl,
        });
      else if (res.status === 401 || res.status === 403) {
        out.push({
          level: "fail",
          title: `provider ${p.id}: key rejected (HTTP ${res.status})`,
          detail: `check ${p.keyEnv}`,
        });
      } else out.push({ level: "warn", title: `provider ${p.id}: HTTP ${res.status} from ${url}` });
    } catch (err) {
      out.push({
        level: "fail",
        title: `provider ${p.id}: unreachable`,
        detail: `${url}: ${errorMessage(err)}${p.source === "builtin" ? ` (set ${p.type === "anthropic" ? "ANTHROPIC_BASE_URL" : "OPENAI_BASE_URL"} for a proxy or compatible endpoint)` : ""}`,
      });
    }
  }
  if (out.length === 0) {
    out.push({
      level: "warn",
      title: "no provider key in the environment",
      detail:
        "set ANTHROPIC_API_KEY or OPENAI_API_KEY (or add keys per agent/user in the settings page)",
    });
  }
  return out;
}

/** `[packages]`: Nix itself, and whether the sandbox driver can run what it builds. */
async function packagesCheck(
  config: LobuConfig,
  configPath: string | undefined,
  offline: boolean,
): Promise<Check[]> {
  const checks: Check[] = await checkNix(config.packages, {
    configDir: configPath ? dirname(configPath) : process.cwd(),
    offline,
  });
  const driver = config.sandbox.driver;
  if (config.packages.enabled && (driver === "virtual" || driver === "host"))
    checks.push({
      level: "warn",
      title: `Nix packages cannot be used with sandbox.driver = "${driver}"`,
      detail:
        driver === "virtual"
          ? "the virtual tier runs a JavaScript shell that cannot run programs; use the process driver"
          : "the host driver does not show package profiles; use the process driver",
    });
  return checks;
}

/**
 * The project's skills: they load, and what they need is declared. An unmet
 * domain need stops `lobu run` (a problem); an undeclared MCP server or an
 * unbound secret only leaves the skill without it (a warning).
 */
export function skillsCheck(config: LobuConfig, configPath: string | undefined): Check[] {
  let catalog: SkillCatalog;
  try {
    catalog = new SkillCatalog(config, configPath, {
      projectDir: configPath ? dirname(configPath) : process.cwd(),
    });
  } catch (err) {
    const hint = isLobuError(err) && err.hint ? `\n${err.hint}` : "";
    return [
      { level: "fail", title: "skills cannot be loaded", detail: `${errorMessage(err)}${hint}` },
    ];
  }
  const skills = catalog.list();
  const checks: Check[] = [
    {
      level: "ok",
      title: skills.length
        ? `skills: ${skills.map((s) => s.name).join(", ")}`
        : "skills: none (`lobu skills add lobu` adds the starter skill)",
    },
  ];
  for (const s of skills)
    for (const n of unmetNeeds(s, config))
      checks.push({
        level: n.kind === "domains" ? "fail" : "warn",
        title: `skill ${s.name}: ${n.problem}`,
        detail: `${s.where}.${n.kind}\nfix: ${n.fix}`,
      });
  for (const w of catalog.warnings) checks.push({ level: "warn", title: "skills", detail: w });
  return checks;
}

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/** The last line: failures make the exit code 1; warnings are reported but exit 0. */
/**
 * Several gateways on one Redis share a conversation only when its workspace
 * (and the agent's transcript in it) is where each of them can reach it.
 */
export function clusterCheck(config: LobuConfig): Check[] {
  const { volumes, volumes_path, s3 } = config.cluster;
  if (volumes === "s3" && s3)
    return [
      {
        level: "ok",
        title: `cluster: volumes saved to the S3 bucket ${s3.bucket}${s3.endpoint ? ` at ${s3.endpoint}` : ""}`,
      },
    ];
  if (volumes === "shared" && volumes_path) {
    try {
      accessSync(volumes_path, constants.R_OK | constants.W_OK);
      return [{ level: "ok", title: `cluster: volumes on the shared directory ${volumes_path}` }];
    } catch (err) {
      return [
        {
          level: "fail",
          title: `cluster: the shared volumes directory ${volumes_path} is not usable`,
          detail: `${errorMessage(err)}\nMount it on every gateway (NFS, CephFS, EFS...) and make it writable by the gateway.`,
        },
      ];
    }
  }
  if (config.store.driver !== "redis") return [];
  return [
    {
      level: "warn",
      title: "cluster: volumes are in this gateway's data dir",
      detail:
        'Fine for one gateway. Several gateways on this Redis take over each other\'s conversations (when a sandbox stops, or a gateway dies) and would each find their own copy of its workspace: set [cluster] volumes = "shared" (and volumes_path) or "s3" (docs/deploy/multi-gateway.md).',
    },
  ];
}

export function verdict(checks: Check[]): string {
  const failed = checks.filter((c) => c.level === "fail").length;
  const warned = checks.filter((c) => c.level === "warn").length;
  if (failed)
    return `${count(failed, "problem")} (✗)${warned ? ` and ${count(warned, "warning")} (!)` : ""}: fix the problems before \`lobu run\`.`;
  if (warned)
    return `No problems, ${count(warned, "warning")} (!): Lobu runs, but read the warnings above.`;
  return "All checks passed.";
}

export async function doctorCommand(opts: {
  config?: string;
  dataDir?: string;
  envFile?: string;
  offline?: boolean;
}): Promise<number> {
  const checks: Check[] = [];
  const envFile = resolve(opts.envFile ?? ".env");
  if (existsSync(envFile)) process.loadEnvFile(envFile);

  const major = Number(process.versions.node.split(".")[0]);
  checks.push(
    major >= 24
      ? { level: "ok", title: `Node.js ${process.version}` }
      : {
          level: "fail",
          title: `Node.js ${process.version} is too old`,
          detail: "Lobu needs Node 24 (npm ci installs it for the repository)",
        },
  );

  let config: LobuConfig | undefined;
  let configPath: string | undefined;
  // Shared with other doctors; while held, no gateway starts (and sweeps the data dir).
  let lock: DataDirLock | undefined;
  try {
    const loaded = loadConfig(opts.config);
    config = loaded.config;
    configPath = loaded.path;
    checks.push({ level: "ok", title: `config ${loaded.path ?? "(defaults; no lobu.toml)"}` });
  } catch (err) {
    checks.push({ level: "fail", title: "config invalid", detail: errorMessage(err) });
  }

  if (config) {
    const dataDir = resolve(opts.dataDir ?? process.env.LOBU_DATA_DIR ?? config.gateway.data_dir);
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      accessSync(dataDir, constants.W_OK);
      const probe = join(dataDir, `.doctor-${process.pid}`);
      writeFileSync(probe, "ok");
      rmSync(probe);
      const mode = statSync(dataDir).mode & 0o777;
      checks.push(
        mode & 0o077
          ? {
              level: "warn",
              title: `data dir ${dataDir} is accessible to other users (mode ${mode.toString(8)})`,
              detail: `chmod 700 ${dataDir}`,
            }
          : { level: "ok", title: `data dir ${dataDir} is writable` },
      );
      lock = lockDataDirShared(dataDir);
      if (!lock) {
        const holder = lockHolder(dataDir);
        checks.push({
          level: "ok",
          title: `data dir in use by ${holder ? describeHolder(holder) : "another Lobu process"}`,
          detail: "the checks below run next to it and change nothing it uses",
        });
      }
    } catch (err) {
      checks.push({
        level: "fail",
        title: `data dir ${dataDir} is not writable`,
        detail: errorMessage(err),
      });
    }

    if (config.store.driver === "redis") {
      const url = config.store.redis_url ?? process.env.REDIS_URL;
      if (!url)
        checks.push({
          level: "fail",
          title: "store: redis selected but no store.redis_url / REDIS_URL",
        });
      else {
        try {
          const store = await createStore({
            driver: "redis",
            url,
            prefix: config.store.key_prefix,
          });
          try {
            await store.ping();
            checks.push({ level: "ok", title: `store: redis reachable (${redactUrl(url)})` });
            // Settings that lose messages (eviction) or durability (no AOF).
            for (const issue of await store.diagnose()) {
              checks.push({
                level: issue.level,
                title: `store: ${issue.problem}`,
                detail: issue.fix,
              });
            }
          } finally {
            await store.close();
          }
        } catch (err) {
          const unsupported = isLobuError(err) && err.code === "store_unsupported";
          checks.push({
            level: "fail",
            title: unsupported ? "store: this Redis cannot be used" : "store: redis unreachable",
            detail:
              isLobuError(err) && err.hint ? `${err.message}\n${err.hint}` : errorMessage(err),
          });
        }
      }
    } else {
      checks.push({ level: "ok", title: "store: embedded SQLite (node:sqlite)" });
    }
    checks.push(...clusterCheck(config));

    checks.push(...(await providerCheck(config, Boolean(opts.offline))));
    checks.push(...skillsCheck(config, configPath));

    // The trial sandbox runs in the data dir only while doctor holds it: a running
    // gateway's sandbox state (uid table, mounts) is its alone.
    const probeDir = lock ? dataDir : mkdtempSync(join(tmpdir(), "lobu-doctor-"));
    try {
      const sel = {
        config,
        dataDir: probeDir,
        log: createLogger("doctor", { level: "silent" }),
        caBundlePath: "/etc/ssl/certs/ca-certificates.crt",
      };
      let name = config.sandbox.driver;
      let driver: ReturnType<typeof createDriver>;
      let probe: Awaited<ReturnType<ReturnType<typeof createDriver>["probe"]>>;
      if (name === "auto") {
        const chosen = await resolveAutoDriver(sel);
        checks.push({
          level: "ok",
          title: `sandbox driver "auto" selects "${chosen.name}"`,
          detail: chosen.why,
        });
        ({ name, driver, probe } = chosen);
      } else {
        driver = createDriver(name, sel);
        probe = await driver.probe();
      }
      await driver.close().catch((err: unknown) =>
        checks.push({
          level: "warn",
          title: `sandbox driver "${name}" did not close cleanly after its probe`,
          detail: errorMessage(err),
        }),
      );
      const level: Level = !probe.ok
        ? "fail"
        : probe.isolated
          ? "ok"
          : config.sandbox.allow_unsandboxed
            ? "warn"
            : "fail";
      checks.push({
        level,
        title: `sandbox driver "${name}": ${!probe.ok ? "unavailable" : probe.isolated ? "isolated" : "NOT isolated"}`,
        detail: probe.details.join("\n"),
      });
    } catch (err) {
      checks.push({
        level: "fail",
        title: `sandbox driver "${config.sandbox.driver}"`,
        detail: errorMessage(err),
      });
    } finally {
      if (probeDir !== dataDir) rmSync(probeDir, { recursive: true, force: true });
    }
    checks.push(...(await packagesCheck(config, configPath, Boolean(opts.offline))));
  }

  for (const [names, why] of [
    [["rg"], "the agent's grep tool (apt-get install ripgrep)"],
    [["fd", "fdfind"], "the agent's find tool (apt-get install fd-find)"],
    [["bash"], "the agent's shell"],
    [["bwrap"], "the process sandbox driver (apt-get install bubblewrap)"],
  ] as const) {
    const found = onPath([...names]);
    checks.push(
      found
        ? { level: "ok", title: `${names[0]}: ${found}` }
        : { level: "warn", title: `${names.join("/")} not found`, detail: `needed by ${why}` },
    );
  }

  lock?.release();

  for (const c of checks) {
    process.stdout.write(`${MARK[c.level]} ${c.title}\n`);
    if (c.detail) for (const line of c.detail.split("\n")) process.stdout.write(`    ${line}\n`);
  }
  process.stdout.write(`\n${verdict(checks)}\n`);
  return checks.some((c) => c.level === "fail") ? 1 : 0;
}
