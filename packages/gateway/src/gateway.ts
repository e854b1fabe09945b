import { mkdirSync } from "node:fs";
import type { ServerOptions } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { resolve } from "node:path";
import { type ServerType, serve } from "@hono/node-server";
import {
  createLogger,
  errorMessage,
  type LobuConfig,
  LobuConfig as LobuConfigSchema,
  LobuError,
  newId,
} from "@lobu/core";
import { Hono } from "hono";
import type { Logger } from "pino";
import { createSettingsLink } from "./access/settings-links.ts";
import { TokenStore } from "./access/tokens.ts";
import { adminRoutes } from "./admin/routes.ts";
import { TurnContextBuilder } from "./agents/context.ts";
import { checkConfigReferences } from "./agents/references.ts";
import { AgentRegistry } from "./agents/registry.ts";
import { apiRoutes } from "./api/routes.ts";
import { AuditLog } from "./audit/log.ts";
import { Inbound } from "./conversations/inbound.ts";
import { Conversations } from "./conversations/records.ts";
import { lockDataDir } from "./datadir/lock.ts";
import { errorResponse } from "./http/errors.ts";
import { assertPortFree, listenError } from "./http/port.ts";
import { UserSettingsStore } from "./people/user-settings.ts";
import { startAdapters } from "./platforms/registry.ts";
import type { PlatformAdapter } from "./platforms/shared/adapter.ts";
import { modelLimitsFor } from "./providers/model-limits.ts";
import { ProviderRegistry, providerSecretName } from "./providers/registry.ts";
import { ActiveTurns } from "./runtime/active-turns.ts";
import { Dispatcher } from "./runtime/dispatcher.ts";
import { selectDriver } from "./runtime/drivers.ts";
import { startEgress } from "./runtime/egress.ts";
import { GatewayToolHost } from "./runtime/gateway-tools.ts";
import { RequestRegistry } from "./runtime/requests.ts";
import { SandboxManager } from "./runtime/sandbox-manager.ts";
import { TurnRunner } from "./runtime/turn-runner.ts";
import type { WorkerLaunchConfig } from "./sandbox/launcher.ts";
import { leaveNothingMounted, releaseLeftovers } from "./sandbox/leftovers.ts";
import { resolveMasterKey } from "./secrets/master-key.ts";
import { PlaceholderRegistry } from "./secrets/placeholders.ts";
import { SecretStore } from "./secrets/store.ts";
import type { GatewayServices } from "./services.ts";
import { settingsRoutes } from "./settings/routes.ts";
import { SkillCatalog } from "./skills/catalog.ts";
import { createStore } from "./store/index.ts";
import type { Store } from "./store/port.ts";
import { startTelemetry } from "./telemetry/otel.ts";
import { Budgets, budgetError } from "./usage/budgets.ts";

export interface GatewayOptions {
  config?: LobuConfig;
  configPath?: string;
  port?: number;
  host?: string;
  dataDir?: string;
  publicUrl?: string;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** Reports long startup steps (the CLI prints them). */
  progress?: (step: string) => void;
  /** How workers are started (embedding, tests); default: this checkout's worker. */
  worker?: WorkerLaunchConfig;
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
  services: GatewayServices;
  /** Register tools that run in the gateway, outside the sandboxes (see runtime/gateway-tools.ts). */
  tools: GatewayToolHost;
  summary: GatewaySummary;
  close(): Promise<void>;
}

/**
 * Limits on what a client may hold open before it is authenticated: the time
 * to send the headers and the whole request (slowloris; Node answers 408 and
 * closes), checked every few seconds rather than Node's default 30, and 16 KiB
 * of headers (Node's default, stated so it stays).
 */
function serverLimits(config: LobuConfig): ServerOptions {
  const { headers_timeout: headersTimeout, request_timeout: requestTimeout } = config.gateway;
  if (headersTimeout > requestTimeout) {
    throw new LobuError(
      "config_invalid",
      "lobu.toml: [gateway] headers_timeout is longer than request_timeout",
      { hint: "The headers are part of the request: make headers_timeout the shorter one." },
    );
  }
  return {
    headersTimeout,
    requestTimeout,
    connectionsCheckingInterval: Math.min(5_000, Math.ceil(headersTimeout / 2)),
    maxHeaderSize: 16 * 1024,
  };
}

/** Copy provider keys from the environment into the secret store (installation scope). */
async function syncEnvProviderKeys(
  secrets: SecretStore,
  providers: ProviderRegistry,
  env: NodeJS.ProcessEnv,
): Promise<string[]> {
  const configured: string[] = [];
  for (const p of providers.list()) {
    const ref = { scope: { kind: "installation" as const }, name: providerSecretName(p.id) };
    const value = p.keyEnv ? env[p.keyEnv] : undefined;
    if (value) {
      if ((await secrets.get(ref)) !== value) await secrets.set(ref, value);
      configured.push(p.id);
    } else if (await secrets.meta(ref)) {
      configured.push(p.id);
    }
  }
  return configured;
}

/**
 * Start a gateway: open the store, wire the runtime (queue → dispatcher → turn
 * runner → sandboxes), the egress endpoint workers use, the REST API and the
 * platform adapters, then listen.
 */
export async function startGateway(opts: GatewayOptions = {}): Promise<Gateway> {
  const env = opts.env ?? process.env;
  const config = opts.config ?? LobuConfigSchema.parse({});
  const log = opts.log ?? createLogger("lobu-gateway");
  // Every step is a point where an aborted start stops (and unwinds what it opened).
  const progress = (step: string) => {
    opts.signal?.throwIfAborted();
    opts.progress?.(step);
  };
  // Cross-references (an agent's provider and skills) are checked before anything is created.
  const providers = new ProviderRegistry(config, env);
  const skills = new SkillCatalog(config, opts.configPath);
  for (const warning of checkConfigReferences(config, providers, skills, opts.configPath)) {
    log.warn(warning);
  }
  const limits = serverLimits(config);
  const dataDir = resolve(opts.dataDir ?? env.LOBU_DATA_DIR ?? config.gateway.data_dir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Whatever a failed or aborted start opened is closed again, in reverse order
  // (a cleanup that fails is logged: the error to report is the one that stopped the start).
  await using startup = new AsyncDisposableStack();
  const onFailure = (undo: () => unknown) =>
    startup.defer(async () => {
      await Promise.resolve()
        .then(undo)
        .catch((err) => log.warn({ err: errorMessage(err) }, "cleanup after a failed start"));
    });
  // One gateway per data dir (see datadir/lock.ts); refused before anything is touched.
  const lock = lockDataDir(dataDir);
  onFailure(() => lock.release());
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
  onFailure(() => leaveNothingMounted(dataDir, log));
  const instanceId = `${hostname()}:${process.pid}:${newId("gw").slice(-6)}`;

  const telemetry = startTelemetry({
    endpoint: config.telemetry.otlp_endpoint ?? env.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: config.telemetry.service_name,
    instanceId,
  });
  onFailure(() => telemetry.shutdown());

  progress(`opening ${config.store.driver} store`);
  let store: Store;
  if (config.store.driver === "redis") {
    const url = config.store.redis_url ?? env.REDIS_URL;
    if (!url) {
      throw new LobuError("config_invalid", 'store.driver is "redis" but no Redis URL is set', {
        hint: "Set store.redis_url in lobu.toml (e.g. redis://127.0.0.1:6379) or REDIS_URL.",
      });
    }
    store = await createStore({ driver: "redis", url, prefix: config.store.key_prefix });
    onFailure(() => store.close());
  } else {
    store = await createStore({ driver: "sqlite", path: resolve(dataDir, "lobu.db") });
    onFailure(() => store.close());
    // One gateway owns an SQLite file: leases left by a previous run are stale.
    const released = await store.queue.releaseAllLeases();
    if (released > 0)
      log.info({ released }, "resuming messages that were in flight when the gateway stopped");
  }

  const master = resolveMasterKey({ dataDir, env });
  const secrets = new SecretStore(store.kv, master.key);
  await secrets.verifyMasterKey();
  const placeholders = new PlaceholderRegistry(store.kv);
  const configuredProviders = await syncEnvProviderKeys(secrets, providers, env);
  const agents = new AgentRegistry(store.kv, config);
  const userSettings = new UserSettingsStore(store.kv);
  const conversations = new Conversations(store);
  const audit = new AuditLog(store);
  const budgets = new Budgets({
    kv: store.kv,
    config,
    onExceeded: (refusal, where) =>
      audit.record({
        action: "budget.exceeded",
        actor: refusal.userKey ?? "system",
        agentId: refusal.agentId,
        details: {
          scope: refusal.scope,
          limit: refusal.limit,
          value: refusal.value,
          used: refusal.used,
          resetsAt: new Date(refusal.resetsAt).toISOString(),
          refused: where,
        },
      }),
    onError: (err) => log.warn({ err }, "could not count usage against budgets"),
  });
  const tokens = new TokenStore(store.kv, env.LOBU_ADMIN_TOKEN);
  const requests = new RequestRegistry(store, log);
  const gatewayTools = new GatewayToolHost({ agents, userSettings, requests, audit, log });
  const inbound = new Inbound({
    agents,
    queue: store.queue,
    conversations,
    maxMessageBytes: config.gateway.max_message_bytes,
  });
  const contexts = new TurnContextBuilder({
    agents,
    providers,
    secrets,
    placeholders,
    userSettings,
    skills,
    budgets,
    modelLimits: (agentId) => modelLimitsFor(config, agentId),
  });
  // The turn running on each sandbox of this gateway: credentials act only inside it.
  const turns = new ActiveTurns({ revoker: placeholders, log });

  // Late-bound: the runner needs the adapters, the egress relay needs the runner.
  const adapters = new Map<string, PlatformAdapter>();
  let runner: TurnRunner | undefined;

  progress("starting the egress proxy");
  const egress = await startEgress({
    config,
    dataDir,
    store,
    secrets,
    placeholders,
    providers,
    agents,
    userSettings,
    skills,
    conversations,
    audit,
    turns,
    log,
    onUsage: (sandboxId, usage) => {
      budgets.record(usage);
      runner?.emitTo(sandboxId, {
        type: "usage",
        provider: usage.provider,
        model: usage.model,
        inputTokens: usage.inputTokens,
        outputTokens: usage.outputTokens,
      });
    },
    // A model call over budget is refused, and that refusal becomes the turn's error.
    admit: async (call) => {
      const refusal = await budgets.admit(call);
      if (refusal) runner?.failTurn(call.sandboxId, budgetError(refusal));
      return refusal;
    },
  });

  onFailure(() => egress.close());

  progress(`checking the ${config.sandbox.driver} sandbox driver`);
  const driver = await selectDriver({
    config,
    dataDir,
    log,
    caBundlePath: egress.caBundlePath,
    worker: opts.worker,
  });
  onFailure(() => driver.driver.close());
  const sandboxes = new SandboxManager({
    driver: driver.driver,
    egress: egress.binder,
    kv: store.kv,
    dataDir,
    limits: {
      memoryMb: config.sandbox.memory_mb,
      cpus: config.sandbox.cpus,
      pids: config.sandbox.pids,
      diskMb: config.sandbox.disk_mb,
    },
    idleTimeoutMs: config.sandbox.idle_timeout,
    env: driver.workerEnv,
    log,
    owner: instanceId,
    audit: (entry) => audit.record(entry),
  });
  runner = new TurnRunner({
    sandboxes,
    conversations,
    contexts,
    requests,
    turns,
    adapterFor: (platform) => adapters.get(platform),
    gatewayTools,
    // Capability requests link to the settings page opened on exactly that request.
    decorateRequest: async (event, turn) =>
      event.type === "capability_request"
        ? {
            ...event,
            url: await createSettingsLink(services, turn.origin, {
              agentId: turn.key.agentId,
              requestId: event.requestId,
            }),
          }
        : event,
    log,
  });
  const turnRunner = runner;
  await requests.start(
    (sandboxId, requestId, answer) =>
      gatewayTools.deliverAnswer(sandboxId, requestId, answer) ||
      turnRunner.deliverAnswer(sandboxId, requestId, answer),
  );
  onFailure(() => requests.stop());
  const dispatcher = new Dispatcher({
    queue: store.queue,
    owner: instanceId,
    maxConcurrent: config.sandbox.max_concurrent,
    run: (turn, attempt, lease) => turnRunner.run(turn, attempt, lease),
    onDeadLetter: async (claim, reason) => {
      const error = { code: "internal", message: `Lobu could not process this message: ${reason}` };
      await conversations.appendEvent(claim.id, { type: "error", ...error });
      await conversations.updateMessage(claim.id, {
        status: "error",
        error,
        completedAt: Date.now(),
      });
      audit.record({
        action: "message.dead_letter",
        actor: "system",
        details: { messageId: claim.id, reason },
      });
    },
    log,
  });

  const services: GatewayServices = {
    config,
    configPath: opts.configPath,
    dataDir,
    publicUrl: "",
    instanceId,
    log,
    store,
    agents,
    providers,
    secrets,
    placeholders,
    skills,
    userSettings,
    contexts,
    conversations,
    inbound,
    requests,
    sandboxes,
    runner,
    dispatcher,
    tokens,
    audit,
    budgets,
    gatewayTools,
  };

  const app = new Hono();
  app.onError((err, c) => errorResponse(err, c, log));
  app.notFound((c) =>
    c.json(
      { error: { code: "not_found", message: `no route for ${c.req.method} ${c.req.path}` } },
      404,
    ),
  );
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/readyz", async (c) => {
    try {
      await store.ping();
      return c.json({
        ok: true,
        queueDepth: await store.queue.depth(),
        running: sandboxes.runningCount,
      });
    } catch (err) {
      return c.json({ ok: false, error: (err as Error).message }, 503);
    }
  });
  app.route(
    "/api/v1",
    apiRoutes(services, Math.max(1_048_576, config.gateway.max_message_bytes * 2)),
  );
  app.route("/", settingsRoutes(services, env));
  app.route("/", adminRoutes(services, env));

  progress("starting platform adapters");
  for (const [platform, adapter] of await startAdapters(services, app, env))
    adapters.set(platform, adapter);
  onFailure(async () => {
    for (const adapter of adapters.values()) await adapter.stop().catch(() => {});
  });

  const server: ServerType = await new Promise((resolveServer, reject) => {
    const s = serve({ fetch: app.fetch, port, hostname: host, serverOptions: limits }, () =>
      resolveServer(s),
    );
    s.once("error", (err) => reject(listenError(err, host, port)));
  });
  onFailure(() => new Promise<void>((r) => server.close(() => r())));
  opts.signal?.throwIfAborted();
  const actualPort = (server.address() as AddressInfo).port;
  const displayHost =
    host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  const url = `http://${displayHost}:${actualPort}`;
  services.publicUrl = (
    opts.publicUrl ??
    env.LOBU_PUBLIC_URL ??
    config.gateway.public_url ??
    url
  ).replace(/\/+$/, "");

  const bootstrap = await tokens.bootstrap(dataDir);
  lock.describe({ url });
  // Started: from here on, close() owns everything.
  startup.move();
  dispatcher.start();
  log.info({ url, instanceId, driver: driver.driver.name, store: store.kind }, "gateway started");

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await new Promise<void>((r) => {
        server.close(() => r());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      await dispatcher.stop(5_000);
      for (const adapter of adapters.values()) await adapter.stop().catch(() => {});
      await sandboxes.close();
      await egress.close();
      await requests.stop();
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
    port: actualPort,
    services,
    tools: gatewayTools,
    summary: {
      dataDir,
      store: store.kind === "redis" ? "redis" : `sqlite (${resolve(dataDir, "lobu.db")})`,
      sandbox: driver.description,
      providers: configuredProviders,
      agents: (await agents.list()).map((a) => a.id),
      platforms: [...adapters.keys()],
      telemetry: telemetry.endpoint,
      adminTokenFile: bootstrap.file,
    },
    close,
  };
}
