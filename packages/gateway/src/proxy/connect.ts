import type { IncomingMessage } from "node:http";
import type net from "node:net";
import tls from "node:tls";
import { matchesPattern } from "../domain/host-patterns.ts";
import { swappableByProxy } from "../secrets/placeholders.ts";
import type { ResolvedAddress } from "./addresses.ts";
import type { AuditScope } from "./audit-records.ts";
import { closeOnHangUp } from "./connections.ts";
import type { EgressContext } from "./context.ts";
import { identifySandbox } from "./identity.ts";
import { authorizeHost } from "./policy.ts";
import { badRequest, refuse, unreachable } from "./refusals.ts";
import { connectVetted, splice } from "./tunnel.ts";

/**
 * CONNECT: a raw TCP tunnel to the vetted address, or, when a placeholder is
 * bound to the host, TLS terminated with the installation CA so the requests
 * inside can be swapped (they are then parsed by the inner server, see
 * intercepted.ts).
 */

export type ConnectContext = Pick<
  EgressContext,
  | "identity"
  | "poolMember"
  | "policyFor"
  | "logger"
  | "resolver"
  | "audit"
  | "limits"
  | "tunnels"
  | "sockets"
  | "ca"
  | "intercepted"
  | "innerServer"
  | "forwarding"
>;

/** An authorized CONNECT, holding its tunnel slot. */
interface OpenedTunnel {
  req: IncomingMessage;
  client: net.Socket;
  head: Buffer;
  /** Where it goes (method CONNECT), as its audit records say. */
  scope: AuditScope;
  addresses: ResolvedAddress[];
  /** Gives the tunnel slot back. */
  release: () => void;
  /** Stops closing the client on hang-up: called once the tunnel is spliced. */
  spliced: () => void;
}

const ESTABLISHED = "HTTP/1.1 200 Connection Established\r\n\r\n";

/** `host:port` of a CONNECT request, or null when it is not that. */
export function parseAuthority(target: string): { host: string; port: number } | null {
  const m = /^(\[[^\]]+\]|[^:/?#\s]+):(\d{1,5})$/.exec(target);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1]!, port };
}

export async function handleConnect(
  ctx: ConnectContext,
  req: IncomingMessage,
  client: net.Socket,
  head: Buffer,
): Promise<void> {
  const spliced = closeOnHangUp(client);
  const id = identifySandbox(ctx, req.headers, true);
  if (!id.ok) return refuse(ctx.audit, req, client, id.refusal, { sandboxId: null, port: 0 });
  const { sandboxId } = id;
  const target = parseAuthority(req.url ?? "");
  if (!target) {
    const r = badRequest(req.url ?? "", "CONNECT needs host:port");
    return refuse(ctx.audit, req, client, r, { sandboxId, port: 0 });
  }
  const { port } = target;
  const auth = await authorizeHost(ctx, sandboxId, target.host);
  if (!auth.ok) return refuse(ctx.audit, req, client, auth.refusal, { sandboxId, port });
  const { host, policy, addresses } = auth;
  const release = ctx.tunnels.hold(sandboxId, client);
  if (!release) {
    const r = ctx.tunnels.limitRefusal(sandboxId, host, policy.agentId);
    return refuse(ctx.audit, req, client, r, { sandboxId, port });
  }
  const scope = { sandboxId, agentId: policy.agentId, method: "CONNECT", host, port };
  const tunnel = { req, client, head, scope, addresses, release, spliced };
  if (await hasBoundPlaceholder(ctx, sandboxId, host)) return interceptTls(ctx, tunnel);
  return openRawTunnel(ctx, tunnel);
}

/** Whether a placeholder the proxy may swap is bound to `host` for this sandbox. */
async function hasBoundPlaceholder(
  ctx: Pick<EgressContext, "forwarding">,
  sandboxId: string,
  host: string,
): Promise<boolean> {
  const bindings = await ctx.forwarding.placeholders.forSandbox(sandboxId);
  return bindings.some((b) => swappableByProxy(b) && b.hosts.some((h) => matchesPattern(host, h)));
}

/** Nothing to swap: bytes flow between the client and the vetted address, TLS end to end. */
async function openRawTunnel(ctx: ConnectContext, t: OpenedTunnel): Promise<void> {
  const { host, port, sandboxId, agentId } = t.scope;
  let upstream: net.Socket;
  try {
    upstream = await connectVetted(t.addresses, port, ctx.limits.upstreamConnectTimeoutMs);
  } catch (err) {
    const detail = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    const r = unreachable(host, port, detail, agentId);
    return refuse(ctx.audit, t.req, t.client, r, { sandboxId, port });
  }
  if (t.client.destroyed) {
    upstream.destroy();
    return;
  }
  ctx.sockets.track(upstream);
  t.client.write(ESTABLISHED);
  if (t.head.length) upstream.write(t.head);
  t.spliced();
  splice(t.client, upstream, ctx.limits.idleTimeoutMs, t.release);
  ctx.audit({
    ...t.scope,
    decision: "tunnel",
    reason: `raw TCP tunnel to ${t.addresses[0]!.address}:${port}`,
    status: 200,
  });
}

/**
 * A placeholder is bound to the host: terminate TLS with a certificate from the
 * installation CA and hand the decrypted stream to the inner HTTP server.
 */
async function interceptTls(ctx: ConnectContext, t: OpenedTunnel): Promise<void> {
  const { host, port, sandboxId } = t.scope;
  const secureContext = await ctx.ca.secureContextFor(host);
  if (t.client.destroyed) return;
  t.client.write(ESTABLISHED);
  if (t.head.length) t.client.unshift(t.head);
  t.spliced();
  const tlsSocket = new tls.TLSSocket(t.client, {
    isServer: true,
    secureContext,
    ALPNProtocols: ["http/1.1"],
  });
  tlsSocket.setTimeout(ctx.limits.idleTimeoutMs, () => tlsSocket.destroy());
  tlsSocket.once("close", () => {
    t.client.destroy();
    t.release();
  });
  let handshaken = false;
  tlsSocket.once("secure", () => {
    handshaken = true;
  });
  tlsSocket.on("error", (err) => {
    if (!handshaken) {
      ctx.audit({
        ...t.scope,
        decision: "error",
        reason: `TLS handshake with the sandbox failed (does the worker trust the Lobu CA bundle?): ${err.message}`,
      });
    }
    tlsSocket.destroy();
  });
  ctx.intercepted.set(tlsSocket, { sandboxId, host, port, addresses: t.addresses });
  ctx.sockets.track(tlsSocket);
  ctx.audit({
    ...t.scope,
    decision: "intercept",
    reason: `TLS terminated to swap placeholders bound to ${host}`,
    status: 200,
  });
  ctx.innerServer.emit("connection", tlsSocket);
}
