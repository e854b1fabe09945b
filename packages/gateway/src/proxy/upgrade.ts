import type { IncomingMessage } from "node:http";
import type net from "node:net";
import type { ResolvedAddress } from "./addresses.ts";
import { closeOnHangUp, type TunnelContext } from "./connections.ts";
import type { EgressContext } from "./context.ts";
import type { Refusal } from "./explain.ts";
import { authority, defaultPort } from "./headers.ts";
import { identifySandbox } from "./identity.ts";
import { authorizeInTunnel } from "./intercepted.ts";
import { authorizeHost } from "./policy.ts";
import { badRequest, type RefusalScope, refuse, unreachable } from "./refusals.ts";
import { relayUpgrade } from "./tunnel.ts";

/**
 * Protocol upgrades (WebSocket), sent to the proxy in absolute form or inside an
 * intercepted tunnel: authorized like any request, then relayed byte for byte.
 * Placeholders are not swapped in upgraded streams (they cannot be redacted).
 */

export type UpgradeContext = Pick<
  EgressContext,
  | "identity"
  | "poolMember"
  | "policyFor"
  | "logger"
  | "resolver"
  | "audit"
  | "limits"
  | "tunnels"
  | "upstreamCa"
>;

/** An authorized upgrade: where it goes. */
interface UpgradeTarget {
  sandboxId: string;
  agentId: string;
  protocol: "http:" | "https:";
  host: string;
  port: number;
  path: string;
  addresses: ResolvedAddress[];
}

type UpgradeAuthorized =
  | { ok: true; target: UpgradeTarget }
  | { ok: false; refusal: Refusal; scope: RefusalScope };

const UPGRADE_PROTOCOLS = ["http:", "https:", "ws:", "wss:"];

/** `tunnel`: the intercepted tunnel the upgrade arrived in, if it did. */
export async function handleUpgrade(
  ctx: UpgradeContext,
  req: IncomingMessage,
  client: net.Socket,
  head: Buffer,
  tunnel?: TunnelContext,
): Promise<void> {
  const spliced = closeOnHangUp(client);
  const auth = tunnel
    ? await authorizeTunnelUpgrade(ctx, req, tunnel)
    : await authorizePlainUpgrade(ctx, req, client);
  if (!auth.ok) return refuse(ctx.audit, req, client, auth.refusal, auth.scope);
  const t = auth.target;
  try {
    await relayUpgrade({
      req,
      client,
      head,
      protocol: t.protocol,
      host: t.host,
      port: t.port,
      path: t.path,
      hostHeader: authority(t.host, t.port, t.protocol),
      addresses: t.addresses,
      ...(ctx.upstreamCa ? { upstreamCa: ctx.upstreamCa } : {}),
      connectTimeoutMs: ctx.limits.upstreamConnectTimeoutMs,
      idleTimeoutMs: ctx.limits.idleTimeoutMs,
    });
  } catch (err) {
    const r = unreachable(t.host, t.port, (err as Error).message, t.agentId);
    return refuse(ctx.audit, req, client, r, { sandboxId: t.sandboxId, port: t.port });
  }
  spliced();
  ctx.audit({
    sandboxId: t.sandboxId,
    agentId: t.agentId,
    method: req.method ?? "GET",
    host: t.host,
    port: t.port,
    decision: "allowed",
    reason: `upgrade (${req.headers.upgrade}) relayed; placeholders are not swapped in upgraded streams`,
  });
}

/** Inside an intercepted tunnel: that tunnel's host and addresses; its slot already counts. */
async function authorizeTunnelUpgrade(
  ctx: UpgradeContext,
  req: IncomingMessage,
  tunnel: TunnelContext,
): Promise<UpgradeAuthorized> {
  const { sandboxId, host, port, addresses } = tunnel;
  const auth = await authorizeInTunnel(ctx, req, tunnel);
  if (!auth.ok) return { ok: false, refusal: auth.refusal, scope: { sandboxId, port } };
  const agentId = auth.policy.agentId;
  return {
    ok: true,
    target: { sandboxId, agentId, protocol: "https:", host, port, path: auth.path, addresses },
  };
}

/** In absolute form: identified, authorized and counted against the tunnel limit on its own. */
async function authorizePlainUpgrade(
  ctx: UpgradeContext,
  req: IncomingMessage,
  client: net.Socket,
): Promise<UpgradeAuthorized> {
  const id = identifySandbox(ctx, req.headers, false);
  if (!id.ok) return { ok: false, refusal: id.refusal, scope: { sandboxId: null, port: 0 } };
  const { sandboxId } = id;
  const fail = (refusal: Refusal, port: number): UpgradeAuthorized => ({
    ok: false,
    refusal,
    scope: { sandboxId, port },
  });
  let url: URL;
  try {
    url = new URL(req.url ?? "");
  } catch {
    return fail(badRequest("", "an upgrade through the proxy needs an absolute URL"), 0);
  }
  if (!UPGRADE_PROTOCOLS.includes(url.protocol)) {
    return fail(badRequest(url.hostname, `${url.protocol} URLs are not supported by the proxy`), 0);
  }
  const protocol = url.protocol === "https:" || url.protocol === "wss:" ? "https:" : "http:";
  const port = url.port ? Number(url.port) : defaultPort(protocol);
  const auth = await authorizeHost(ctx, sandboxId, url.hostname);
  if (!auth.ok) return fail(auth.refusal, port);
  const { host, addresses } = auth;
  const agentId = auth.policy.agentId;
  if (!ctx.tunnels.hold(sandboxId, client)) {
    return fail(ctx.tunnels.limitRefusal(sandboxId, host, agentId), port);
  }
  const path = `${url.pathname}${url.search}`;
  return { ok: true, target: { sandboxId, agentId, protocol, host, port, path, addresses } };
}
