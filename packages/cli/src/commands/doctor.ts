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
  checkConfigReferences,
  checkNix,
  createDriver,
  createStore,
  type DataDirLock,
  describeHolder,
  KEYLESS,
  lockDataDirShared,
  lockHolder,
  MASTER_KEY_FILE,
  PLATFORMS,
  type ProviderProbe,
  ProviderRegistry,
  platformsSetUp,
  probeProvider,
  providerSecretName,
  redactUrl,
  resolveAutoDriver,
  resolveMasterKey,
  SecretStore,
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

/** Fixed-width columns (the provider table). */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/**
 * The installation's provider keys as the gateway holds them: the environment
 * first (what `lobu run` copies into the secret store), else the secret store
 * itself when this data dir has one and its master key is at hand.
 */
async function storedProviderKeys(
  config: LobuConfig,
  dataDir: string,
  ids: string[],
): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (config.store.driver !== "sqlite" || !existsSync(join(dataDir, "lobu.db"))) return found;
  // Never make a master key here (resolveMasterKey would): the stored secrets are under another.
  if (!process.env.LOBU_MASTER_KEY && !existsSync(join(dataDir, MASTER_KEY_FILE))) return found;
  try {
    const master = resolveMasterKey({ dataDir, env: process.env });
    const store = await createStore({ driver: "sqlite", path: join(dataDir, "lobu.db") });
    try {
      const secrets = new SecretStore(store.kv, master.key);
      for (const id of ids) {
        const value = await secrets.get({
          scope: { kind: "installation" },
          name: providerSecretName(id),
        });
        if (value) found.set(id, value);
      }
    } finally {
      await store.close();
    }
  } catch {
    // No master key here (or another one): the environment is all doctor can check.
  }
  return found;
}

/**
 * Each configured provider checked with a cheap call (its model listing, no
 * tokens) with the key the gateway would use, as a table with a fix per row.
 * Providers nobody set up (no key, not in lobu.toml) are named on one line.
 */
async function providerCheck(
  config: LobuConfig,
  dataDir: string | undefined,
  offline: boolean,
): Promise<Check[]> {
  const providers = new ProviderRegistry(config);
  const stored = dataDir
    ? await storedProviderKeys(
        config,
        dataDir,
        providers.list().map((p) => p.id),
      )
    : new Map<string, string>();
  const rows: string[][] = [["provider", "key", "endpoint", "result"]];
  const fixes: string[] = [];
  const unset: string[] = [];
  let level: Level = "ok";
  for (const p of providers.list()) {
    const fromEnv = p.keyEnv ? process.env[p.keyEnv] : undefined;
    const key = fromEnv || stored.get(p.id) || (p.keyOptional ? KEYLESS : undefined);
    const source = fromEnv
      ? p.keyEnv!
      : stored.has(p.id)
        ? stored.get(p.id) === KEYLESS
          ? "none needed"
          : "secret store"
        : key === KEYLESS
          ? "none needed"
          : "—";
    if (!key && p.source === "builtin") {
      unset.push(`${p.id} (${p.keyEnv})`);
      continue;
    }
    const probe: ProviderProbe = offline
      ? { provider: p.id, level: "ok", result: "not contacted (--offline)" }
      : await probeProvider(p, key);
    rows.push([`${MARK[probe.level]} ${p.id}`, source, p.baseUrl, probe.result]);
    if (probe.fix) fixes.push(`${p.id}: ${probe.fix}`);
    if (probe.level === "fail" || (probe.level === "warn" && level === "ok")) level = probe.level;
  }
  const out: Check[] = [];
  if (rows.length > 1) {
    out.push({
      level,
      title: `providers: ${rows.length - 1} configured`,
      detail: [table(rows), ...(fixes.length ? ["fix:", ...fixes.map((f) => `  ${f}`)] : [])].join(
        "\n",
      ),
    });
  } else {
    out.push({
      level: "warn",
      title: "no provider key in the environment",
      detail:
        "set ANTHROPIC_API_KEY or OPENAI_API_KEY (or another provider's, docs/providers.md), or add keys per agent/user in the settings page",
    });
  }
  if (unset.length && rows.length > 1)
    out.push({ level: "ok", title: `providers without a key: ${unset.join(", ")}` });
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

function withHint(err: unknown): string {
  return `${errorMessage(err)}${isLobuError(err) && err.hint ? `\n${err.hint}` : ""}`;
}

/**
 * What `lobu run` refuses beyond the schema: agents naming a provider or skill
 * that is not defined, skills naming undeclared MCP servers, domain patterns
 * that are public suffixes. Skills that fail to load are skillsCheck's to report.
 */
export function referenceProblems(
  config: LobuConfig,
  configPath: string | undefined,
): string | undefined {
  let catalog: SkillCatalog;
  try {
    catalog = new SkillCatalog(config, configPath, {
      projectDir: configPath ? dirname(configPath) : process.cwd(),
    });
  } catch {
    return undefined;
  }
  try {
    checkConfigReferences(config, new ProviderRegistry(config), catalog, configPath);
    return undefined;
  } catch (err) {
    return withHint(err);
  }
}

/** The chat platforms lobu.toml and the environment set up, refused as `lobu run` would. */
export function platformsCheck(config: LobuConfig): Check[] {
  try {
    const names = platformsSetUp(PLATFORMS, config, process.env);
    return [
      {
        level: "ok",
        title: `platforms: ${names.length ? names.join(", ") : "none, REST API only"}`,
        ...(names.length ? {} : { detail: "set a platform's token to add it (docs/platforms/)" }),
      },
    ];
  } catch (err) {
    return [
      { level: "fail", title: "platforms: `lobu run` refuses the setup", detail: withHint(err) },
    ];
  }
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
    return [{ level: "fail", title: "skills cannot be loaded", detail: withHint(err) }];
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
    const refused = referenceProblems(loaded.config, loaded.path);
    checks.push(
      refused
        ? {
            level: "fail",
            title: `config ${loaded.path}: \`lobu run\` refuses it`,
            detail: refused,
          }
        : { level: "ok", title: `config ${loaded.path ?? "(defaults; no lobu.toml)"}` },
    );
  } catch (err) {
    checks.push({ level: "fail", title: "config invalid", detail: withHint(err) });
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

    checks.push(...(await providerCheck(config, dataDir, Boolean(opts.offline))));
    checks.push(...platformsCheck(config));
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
