import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { resolve } from "node:path";
import {
  createLogger,
  errorMessage,
  type LobuConfig,
  LobuConfig as LobuConfigSchema,
  newId,
} from "@lobu/core";
import type { Hono } from "hono";
import type { Logger } from "pino";
import { checkConfigReferences } from "./agents/references.ts";
import { lockDataDir } from "./datadir/lock.ts";
import { assertPortFree } from "./http/port.ts";
import { PublicUrl } from "./http/public-url.ts";
import { PLATFORMS } from "./platforms/index.ts";
import type { PlatformPlugin } from "./platforms/shared/plugin.ts";
import { ProviderRegistry } from "./providers/registry.ts";
import type { GatewayToolHost } from "./runtime/gateway-tools.ts";
import type { RetentionSweeper } from "./runtime/retention.ts";
import type { WorkerLaunchConfig } from "./sandbox/launcher.ts";
import { leaveNothingMounted, releaseLeftovers } from "./sandbox/leftovers.ts";
import { SkillCatalog } from "./skills/catalog.ts";
import { SkillViews, skillViewsRoot } from "./skills/views.ts";
import { OnceMarkers } from "./store/once.ts";
import { startTelemetry } from "./telemetry/otel.ts";
import { type AdapterContextDeps, adapterContext } from "./wiring/adapter-context.ts";
import { buildDomain, type Domain } from "./wiring/domain.ts";
import { buildApp, listen, serverLimits } from "./wiring/http.ts";
import { Platforms, settingsSignIns } from "./wiring/platforms.ts";
import { startRuntime } from "./wiring/runtime.ts";
import type { Startup } from "./wiring/startup.ts";
import { openStorage } from "./wiring/storage.ts";

export interface GatewayOptions {
  config?: LobuConfig;
  configPath?: string;
  /** The project: its `skills/` and skills-lock.json (default: the folder of configPath). */
  projectDir?: string;
  port?: number;
  host?: string;
  dataDir?: string;
  publicUrl?: string;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** Reports long startup steps (the CLI prints them). */
  progress?: (step: string) => void;
  /** How workers are started (embedding, tests); default: the `@lobu/worker` package. */
  worker?: WorkerLaunchConfig;
  /** The clock retention is measured by (tests move it); default: the real one. */
  retentionClock?: () => number;
  /** The chat platforms this gateway knows (default: every registered one, platforms/index.ts). */
  platforms?: readonly PlatformPlugin[];
  /** Abandon a start in progress (e.g. SIGTERM during startup): what was opened is closed again. */
  signal?: AbortSignal;
}

export interface GatewaySummary {
  dataDir: string;
  store: string;
  sandbox: string;
  providers: string[];
  agents: string[];
  platforms: string[];
  adminTokenFile: string;
  /** OTLP endpoint traces go to, when enabled. */
  telemetry?: string;
}

export interface Gateway {
  url: string;
  /** The HTTP app (for tests and embedding). */
  app: Hono;
  port: number;
  /** The gateway's records and rules (for tests and embedding). */
  services: Domain;
  /** Register tools that run in the gateway, outside the sandboxes (see runtime/gateway-tools.ts). */
  tools: GatewayToolHost;
  /** The retention sweep (scheduled by `[retention] sweep_interval`; tests run it at will). */
  retention: RetentionSweeper;
  summary: GatewaySummary;
  close(): Promise<void>;
}

/**
 * Start a gateway, in phases that each build on the previous one's objects:
 * storage (store, secrets) → domain (agents, conversations, requests, ...) →
 * runtime (egress, sandboxes, turn runner, dispatcher) → HTTP (routes, platform
 * adapters, listen). Nothing is bound late: each object gets what it uses when
 * it is made (see docs/architecture.md).
 */
export async function startGateway(opts: GatewayOptions = {}): Promise<Gateway> {
  const env = opts.env ?? process.env;
  const config = opts.config ?? LobuConfigSchema.parse({});
  const log = opts.log ?? createLogger("lobu-gateway");
  const plugins = opts.platforms ?? PLATFORMS;
  // Cross-references (an agent's provider and skills) are checked before anything is created.
  const providers = new ProviderRegistry(config, env);
  const skills = new SkillCatalog(config, opts.configPath, { projectDir: opts.projectDir });
  for (const warning of checkConfigReferences(config, providers, skills, opts.configPath)) {
    log.warn(warning);
  }
  const limits = serverLimits(config);
  // The platforms' adapters are built (not started) before anything opens: a bad setup stops here.
  const platforms = Platforms.create(plugins, config, env, log);
  const dataDir = resolve(opts.dataDir ?? env.LOBU_DATA_DIR ?? config.gateway.data_dir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Whatever a failed or aborted start opened is closed again, in reverse order
  // (a cleanup that fails is logged: the error to report is the one that stopped the start).
  await using stack = new AsyncDisposableStack();
  const startup: Startup = {
    // Every step is a point where an aborted start stops (and unwinds what it opened).
    progress: (step) => {
      opts.signal?.throwIfAborted();
      opts.progress?.(step);
    },
    onFailure: (undo) =>
      stack.defer(async () => {
        await Promise.resolve()
          .then(undo)
          .catch((err) => log.warn({ err: errorMessage(err) }, "cleanup after a failed start"));
      }),
  };
  // One gateway per data dir (see datadir/lock.ts); refused before anything is touched.
  const lock = lockDataDir(dataDir);
  startup.onFailure(() => lock.release());
  const host = opts.host ?? env.LOBU_HOST ?? config.gateway.host;
  const port = opts.port ?? (env.LOBU_PORT ? Number(env.LOBU_PORT) : config.gateway.port);
  // A busy port is found before the store, the proxy and the sandbox probe start.
  await assertPortFree(host, port);
  // The lock makes whatever is mounted under the data dir ours: a gateway that died
  // without stopping its sandboxes left it.
  const leftovers = await releaseLeftovers(dataDir, log);
  if (leftovers.unmounted.length || leftovers.detached.length)
    log.warn(leftovers, "released mounts a previous run left behind (it did not stop cleanly)");
  // A start that fails or is aborted leaves nothing mounted either (e.g. its trial sandbox).
  startup.onFailure(() => leaveNothingMounted(dataDir, log));
  const instanceId = `${hostname()}:${process.pid}:${newId("gw").slice(-6)}`;
  const telemetry = startTelemetry({
    endpoint: config.telemetry.otlp_endpoint ?? env.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: config.telemetry.service_name,
    instanceId,
    log,
  });
  startup.onFailure(() => telemetry.shutdown());
  // Settled when the server listens, unless configured (see http/public-url.ts).
  const publicUrl = new PublicUrl(
    opts.publicUrl ?? env.LOBU_PUBLIC_URL ?? config.gateway.public_url,
  );

  const storage = await openStorage({ config, env, dataDir, log, startup });
  const { store } = storage;
  const skillViews = new SkillViews(skillViewsRoot(dataDir), {
    onCopyFailed: (skill, err) =>
      log.warn(
        { skill, err: errorMessage(err) },
        "a skill's files could not be copied into a sandbox (restart after changing skills/)",
      ),
  });
  const domain = await buildDomain({
    config,
    env,
    log,
    providers,
    skills,
    skillViews,
    storage,
    publicUrl,
    dataDir,
    configPath: opts.configPath,
    instanceId,
  });
  const runtime = await startRuntime({
    config,
    dataDir,
    instanceId,
    log,
    worker: opts.worker,
    startup,
    storage,
    domain,
    skillViews,
    historyFor: (platform) => platforms.historyFor(platform),
    replySurfaceFor: (platform) => platforms.replySurfaceFor(platform),
    ...(opts.retentionClock ? { retentionClock: opts.retentionClock } : {}),
  });
  const { sandboxes, egress, dispatcher, driver } = runtime;
  const signIns = settingsSignIns(plugins, config, env, (platform) => ({
    // A sign-in's proof opens one session: its digest is remembered while it is valid.
    once: new OnceMarkers(store.kv, `settings-sign-in:${platform}`),
    // Sign-ins record only refusals, which strangers can repeat: paced.
    audit: (entry) => domain.audit.recordRefusal(entry),
  }));
  const app = buildApp({
    config,
    env,
    log,
    instanceId,
    publicUrl,
    storage,
    domain,
    runtime,
    signIns,
  });

  startup.progress("starting platform adapters");
  const lent: AdapterContextDeps = {
    log,
    publicUrl,
    kv: store.kv,
    streams: store.streams,
    inbound: domain.inbound,
    answer: domain.answer,
    route: domain.inbound,
    stops: runtime.stops,
    config,
    settingsLinks: domain.settingsLinks,
    audit: domain.audit,
    secrets: storage.secrets,
    agents: domain.agents,
  };
  startup.onFailure(() => platforms.stop());
  await platforms.start(app, (platform, routes) => adapterContext(lent, platform, routes));

  const listening = await listen(app, { host, port, limits });
  const { server, url } = listening;
  startup.onFailure(() => new Promise<void>((r) => server.close(() => r())));
  opts.signal?.throwIfAborted();
  publicUrl.listening(url);

  const bootstrap = await domain.tokens.bootstrap(dataDir);
  lock.describe({ url });
  // Started: from here on, close() owns everything.
  stack.move();
  dispatcher.start();
  const stopRetention = runtime.retention.schedule();
  if (config.schedules.enabled) domain.scheduler.start();
  log.info({ url, instanceId, driver: driver.driver.name, store: store.kind }, "gateway started");

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await new Promise<void>((r) => {
        server.close(() => r());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await domain.scheduler.stop();
      await dispatcher.stop(5_000);
      runtime.stopPackageGc();
      runtime.stopGauges();
      stopRetention();
      await platforms.stop();
      await sandboxes.close();
      // Its sandboxes have stopped: other gateways may take them at once.
      await runtime.placement?.close();
      await egress.close();
      await domain.requests.stop();
      await domain.mcp.clients.close();
      await runtime.stops.close();
      await domain.audit.flush();
      await store.close();
      await telemetry.shutdown();
      // Every sandbox has stopped and unmounted its volume; anything still mounted
      // (a sandbox that started while the gateway was stopping) goes now.
      await leaveNothingMounted(dataDir, log);
    })().finally(() => lock.release());
    return closing;
  };

  return {
    url,
    app,
    port: listening.port,
    services: domain,
    tools: domain.gatewayTools,
    retention: runtime.retention,
    summary: {
      dataDir,
      store: store.kind === "redis" ? "redis" : `sqlite (${resolve(dataDir, "lobu.db")})`,
      sandbox: driver.description,
      providers: domain.configuredProviders,
      agents: (await domain.agents.list()).map((a) => a.id),
      platforms: platforms.names,
      telemetry: telemetry.endpoint,
      adminTokenFile: bootstrap.file,
    },
    close,
  };
}
