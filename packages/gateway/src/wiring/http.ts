import type { Server, ServerOptions } from "node:http";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { errorBody, type LobuConfig, LobuError } from "@lobu/core";
import { Hono } from "hono";
import type { Logger } from "pino";
import { adminRoutes } from "../admin/routes.ts";
import { apiRoutes } from "../api/routes.ts";
import { errorResponse } from "../http/errors.ts";
import { lingerAfterAnswer } from "../http/linger.ts";
import { listenError } from "../http/port.ts";
import type { PublicUrl } from "../http/public-url.ts";
import type { SettingsSignIn } from "../http/sign-in.ts";
import { settingsRoutes } from "../settings/routes.ts";
import { httpSpans } from "../telemetry/http-spans.ts";
import type { Domain } from "./domain.ts";
import { buildPersonData } from "./person-data.ts";
import type { Runtime } from "./runtime.ts";
import type { Storage } from "./storage.ts";

/**
 * Phase 4: the HTTP app — health, the REST API, the settings page and the
 * admin UI, each given exactly the objects it uses (the platforms add their
 * routes when they start). Request handlers read the public URL, which is
 * known by the time any request arrives.
 */
export function buildApp(opts: {
  config: LobuConfig;
  env: NodeJS.ProcessEnv;
  log: Logger;
  instanceId: string;
  publicUrl: PublicUrl;
  storage: Storage;
  domain: Domain;
  runtime: Pick<Runtime, "sandboxes" | "stops">;
  signIns: readonly SettingsSignIn[];
}): Hono {
  const { config, env, log, instanceId, publicUrl, domain } = opts;
  const { store, secrets, placeholders } = opts.storage;
  const { sandboxes } = opts.runtime;
  const { agents, audit, conversations, tokens, sessions, usage } = domain;
  const people = buildPersonData({
    store,
    secrets,
    placeholders,
    userSettings: domain.userSettings,
    audit,
    sandboxes,
    packages: domain.packages,
    schedules: domain.schedules,
    memory: domain.memory,
    mcp: domain.mcp.service,
    accounts: domain.accounts,
  });
  const app = new Hono();
  app.use(httpSpans());
  app.onError((err, c) => errorResponse(err, c, log));
  app.notFound((c) =>
    c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404),
  );
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/readyz", async (c) => {
    try {
      await store.ping();
      return c.json({
        ok: true,
        queueDepth: await store.queue.depth(),
        running: sandboxes.runningCount,
        writeFailures: audit.writeFailures,
      });
    } catch (err) {
      return c.json(
        { ok: false, error: (err as Error).message, writeFailures: audit.writeFailures },
        503,
      );
    }
  });
  const api = apiRoutes(
    {
      config,
      instanceId,
      get publicUrl() {
        return publicUrl.value;
      },
      store,
      tokens,
      agents,
      contexts: domain.contexts,
      providers: domain.providers,
      skills: domain.skills,
      secrets,
      inbound: domain.inbound,
      fileBlobs: domain.fileBlobs,
      conversations,
      requests: domain.requests,
      audit,
      answer: domain.answer,
      stops: opts.runtime.stops,
      usage,
      sandboxes,
      placeholders,
      settingsLinks: domain.settingsLinks,
      people,
      accounts: domain.accounts,
      schedules: domain.schedules,
    },
    Math.max(1_048_576, config.gateway.max_message_bytes * 2),
  );
  app.route("/api/v1", api);
  const settings = settingsRoutes(
    {
      config,
      get publicUrl() {
        return publicUrl.value;
      },
      sessions,
      settingsLinks: domain.settingsLinks,
      signIns: opts.signIns,
      agents,
      audit,
      requests: domain.requests,
      answer: domain.answer,
      providers: domain.providers,
      modelAccess: domain.modelAccess,
      secrets,
      skills: domain.skills,
      userSettings: domain.userSettings,
      gatewayTools: domain.gatewayTools,
      packages: domain.packages,
      people,
      schedules: domain.schedules,
      memory: domain.memory,
      mcpConnect: domain.mcp.connect,
      mcp: domain.mcp.service,
      sandboxTier: domain.sandboxTier,
      accounts: domain.accounts,
      oidc: domain.oidc,
    },
    env,
  );
  app.route("/", settings);
  const admin = adminRoutes(
    {
      config,
      get publicUrl() {
        return publicUrl.value;
      },
      sessions,
      tokens,
      agents,
      conversations,
      sandboxes,
      audit,
      usage,
      accounts: domain.accounts,
    },
    env,
  );
  app.route("/", admin);
  return app;
}

/**
 * Limits on what a client may hold open before it is authenticated: the time
 * to send the headers and the whole request (slowloris; Node answers 408 and
 * closes), checked every few seconds rather than Node's default 30, and 16 KiB
 * of headers (Node's default, stated so it stays).
 */
export function serverLimits(config: LobuConfig): ServerOptions {
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

/** Listen; resolves with the server and the URL it answers on. */
export async function listen(
  app: Hono,
  opts: { host: string; port: number; limits: ServerOptions },
): Promise<{ server: ServerType; url: string; port: number }> {
  const { host, port } = opts;
  const server: ServerType = await new Promise((resolveServer, reject) => {
    const s = serve(
      {
        fetch: app.fetch,
        port,
        hostname: host,
        serverOptions: opts.limits,
        // Unread bodies are discarded by lingerAfterAnswer, with a budget that
        // outlasts a loaded client (Hono's own gives up after 500 ms).
        autoCleanupIncoming: false,
      },
      () => resolveServer(s),
    );
    lingerAfterAnswer(s as Server);
    s.once("error", (err) => reject(listenError(err, host, port)));
  });
  const actualPort = (server.address() as AddressInfo).port;
  const displayHost =
    host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return { server, url: `http://${displayHost}:${actualPort}`, port: actualPort };
}
