import http, { type ServerResponse } from "node:http";
import type net from "node:net";
import type { Logger } from "@lobu/core";
import { lingerAfterAnswer } from "../http/linger.ts";
import type { EgressIdentity } from "../sandbox/driver.ts";
import type { PlaceholderLookup } from "../secrets/placeholders.ts";
import { readSnapshot } from "../store/read-cache.ts";
import type { Resolver } from "./addresses.ts";
import type { AuditSink } from "./audit.ts";
import { createAuditRecorder } from "./audit-records.ts";
import { BoundSecrets } from "./bound.ts";
import type { CertificateAuthority } from "./ca.ts";
import { clientErrorHandler } from "./client-errors.ts";
import { handleConnect } from "./connect.ts";
import { OpenSockets, type TunnelContext, TunnelSlots } from "./connections.ts";
import type { EgressContext } from "./context.ts";
import type { PlaintextSwap } from "./forwarding.ts";
import { handleInterceptedRequest } from "./intercepted.ts";
import type { InternalHandler } from "./internal-endpoint.ts";
import { DEFAULT_EGRESS_LIMITS, type EgressLimits } from "./limits.ts";
import { handlePlainRequest } from "./plain-http.ts";
import type { EgressPolicy } from "./policy.ts";
import type { SecretSource } from "./swap.ts";
import type { UpstreamTrust } from "./tunnel.ts";
import { handleUpgrade } from "./upgrade.ts";
import { UpstreamPools } from "./upstream-pools.ts";

/**
 * The egress endpoint a sandbox reaches through its Unix socket. It is an HTTP
 * forward proxy (absolute-form requests and CONNECT) that enforces the agent's
 * domain policy and the address guard, swaps bound placeholders for real secrets,
 * and hands `/__lobu/*` to the gateway's internal API. This module wires the
 * servers to the handlers: identity.ts and policy.ts decide, plain-http.ts,
 * connect.ts, intercepted.ts and upgrade.ts handle each kind of request,
 * refusals.ts and audit-records.ts answer and record. Each request's store reads
 * share one generation check (store/read-cache.ts `readSnapshot`).
 */

export type { InternalContext, InternalHandler } from "./internal-endpoint.ts";
export { DEFAULT_EGRESS_LIMITS, type EgressLimits } from "./limits.ts";
export type { EgressPolicy } from "./policy.ts";

export interface EgressServerOptions {
  identity: EgressIdentity;
  /**
   * For pool identities: whether `sandboxId` is placed on this pool. A pool
   * process may only speak for its own sandboxes, so a compromised pool cannot
   * borrow another pool's tenants.
   */
  poolMember?(poolId: string, sandboxId: string): boolean;
  /** The network policy of a sandbox; null = unknown sandbox (refused). */
  policyFor(sandboxId: string): Promise<EgressPolicy | null>;
  /** The agent of a sandbox, null = unknown (the internal API's identity). Default: policyFor's. */
  agentOf?(sandboxId: string): Promise<string | null>;
  placeholders: PlaceholderLookup;
  secrets: SecretSource;
  /** The installation CA (loadOrCreateCa), for hosts where placeholders are swapped over TLS. */
  ca: CertificateAuthority;
  /** Handler for `/__lobu/*` (LLM relay, MCP proxy). 404 when absent. */
  internal?: InternalHandler;
  audit?: AuditSink;
  /** DNS resolver (tests map fake names to local servers). Default: the system's. */
  resolver?: Resolver;
  /** CAs trusted for upstream TLS. Default: Node's normal store. Never the Lobu CA. */
  upstreamCa?: UpstreamTrust;
  limits?: Partial<EgressLimits>;
  /**
   * Whether placeholders are swapped into plain-HTTP requests: `private-only`
   * (default: only to operator-allowed private addresses), `always`, `never`.
   */
  plaintextSwap?: PlaintextSwap;
  logger?: Logger;
}

export interface EgressServer extends http.Server {
  /** Stop listening and cut every connection and tunnel now. */
  shutdown(): Promise<void>;
}

export function createEgressServer(opts: EgressServerOptions): EgressServer {
  const limits: EgressLimits = { ...DEFAULT_EGRESS_LIMITS, ...opts.limits };
  const serverOptions: http.ServerOptions = {
    maxHeaderSize: limits.maxHeaderBytes,
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: 30_000,
    noDelay: true,
  };
  const server = http.createServer(serverOptions) as EgressServer;
  const pools = new UpstreamPools({
    connectTimeoutMs: limits.upstreamConnectTimeoutMs,
    ...(opts.logger ? { log: opts.logger } : {}),
    ...(opts.upstreamCa ? { upstreamCa: opts.upstreamCa } : {}),
  });
  const ctx = egressContext(opts, limits, pools, http.createServer(serverOptions));
  const { innerServer } = ctx;
  const onClientError = clientErrorHandler(ctx);

  server.on("connection", (socket: net.Socket) => ctx.sockets.track(socket));
  // A refusal answered before the body was read (a sandbox's upload to a host it
  // may not reach, a relay call without a credential) must reach the client.
  lingerAfterAnswer(server);
  lingerAfterAnswer(innerServer);
  server.on("request", (req, res) =>
    readSnapshot(() => handlePlainRequest(ctx, req, res)).catch(crashed(ctx, "request", res)),
  );
  server.on("connect", (req, socket: net.Socket, head) =>
    readSnapshot(() => handleConnect(ctx, req, socket, head)).catch(
      crashed(ctx, "CONNECT", undefined, socket),
    ),
  );
  server.on("upgrade", (req, socket: net.Socket, head) =>
    handleUpgrade(ctx, req, socket, head).catch(crashed(ctx, "upgrade", undefined, socket)),
  );
  server.on("clientError", onClientError);
  innerServer.on("request", (req, res) =>
    readSnapshot(() => handleInterceptedRequest(ctx, req, res)).catch(crashed(ctx, "request", res)),
  );
  innerServer.on("upgrade", (req, socket: net.Socket, head) => {
    const tunnel: TunnelContext | undefined = ctx.intercepted.get(req.socket);
    if (!tunnel) return socket.destroy();
    handleUpgrade(ctx, req, socket, head, tunnel).catch(crashed(ctx, "upgrade", undefined, socket));
  });
  innerServer.on("clientError", onClientError);

  server.shutdown = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      innerServer.closeAllConnections();
      ctx.sockets.destroyAll();
      void pools.destroy();
    });
  return server;
}

/** Everything the handlers share, from the options; `innerServer` parses intercepted tunnels. */
function egressContext(
  opts: EgressServerOptions,
  limits: EgressLimits,
  pools: UpstreamPools,
  innerServer: http.Server,
): EgressContext {
  const { placeholders, secrets, upstreamCa } = opts;
  return {
    identity: opts.identity,
    ...(opts.poolMember ? { poolMember: opts.poolMember } : {}),
    policyFor: opts.policyFor,
    ...(opts.agentOf ? { agentOf: opts.agentOf } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.resolver ? { resolver: opts.resolver } : {}),
    ...(upstreamCa ? { upstreamCa } : {}),
    ...(opts.internal ? { internal: opts.internal } : {}),
    audit: createAuditRecorder(opts.audit, opts.logger),
    limits,
    ca: opts.ca,
    forwarding: {
      placeholders,
      secrets,
      bound: new BoundSecrets({ placeholders, secrets }),
      pools,
      ...(upstreamCa ? { upstreamCa } : {}),
      limits,
      plaintextSwap: opts.plaintextSwap ?? "private-only",
    },
    tunnels: new TunnelSlots(limits.maxTunnelsPerSandbox),
    sockets: new OpenSockets(),
    intercepted: new WeakMap(),
    innerServer,
  };
}

/** A handler threw: log it, answer 500 if nothing was sent yet, and cut the connection. */
function crashed(
  ctx: Pick<EgressContext, "logger">,
  what: string,
  res?: ServerResponse,
  socket?: net.Socket,
): (err: unknown) => void {
  return (err) => {
    ctx.logger?.error({ err }, `egress ${what} failed`);
    if (res && !res.headersSent) {
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8", connection: "close" });
      res.end("Lobu egress proxy: internal error\n");
    } else res?.destroy();
    socket?.destroy();
  };
}
