import type { IncomingMessage, ServerResponse } from "node:http";
import { normalizeHost } from "../domain/host-patterns.ts";
import { outcomeRecord } from "./audit-records.ts";
import type { TunnelContext } from "./connections.ts";
import type { EgressContext } from "./context.ts";
import { forward } from "./forward.ts";
import { authority } from "./headers.ts";
import { type EgressPolicy, loadPolicy, type PolicySource, refuseInTunnel } from "./policy.ts";
import { badRequest, type Refused, refuse, refused } from "./refusals.ts";

/**
 * Requests inside an intercepted CONNECT tunnel, parsed by the inner server:
 * each must name the host the tunnel was opened to, and the policy is checked
 * again before it is forwarded to the address vetted when the tunnel opened.
 */

export type InTunnelAuthorized = { ok: true; policy: EgressPolicy; path: string } | Refused;

/**
 * The origin-form path of a request inside an intercepted tunnel, or why it is
 * refused: it must name the host the tunnel was opened to (no domain fronting).
 */
export function innerTarget(
  req: IncomingMessage,
  t: TunnelContext,
): { ok: true; path: string } | Refused {
  let path = req.url ?? "/";
  let named = req.headers.host ?? "";
  if (!path.startsWith("/")) {
    try {
      const u = new URL(path);
      named = u.host;
      path = `${u.pathname}${u.search}`;
    } catch {
      return refused(badRequest(t.host, "the request target is not a valid URL"));
    }
  }
  const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(named);
  const sameHost =
    hp && normalizeHost(hp[1]!) === t.host && (hp[2] ? Number(hp[2]) : 443) === t.port;
  if (!sameHost) {
    return refused(
      badRequest(
        t.host,
        `this tunnel was opened to ${authority(t.host, t.port, "https:")}, but the request is for "${named}"; open a tunnel to that host instead`,
        421,
      ),
    );
  }
  return { ok: true, path };
}

/**
 * A request inside an intercepted tunnel: same host only (innerTarget), and the
 * policy re-checked (it may have changed since the CONNECT) against the
 * addresses vetted then, without resolving again.
 */
export async function authorizeInTunnel(
  source: PolicySource,
  req: IncomingMessage,
  t: TunnelContext,
): Promise<InTunnelAuthorized> {
  const target = innerTarget(req, t);
  if (!target.ok) return target;
  const loaded = await loadPolicy(source, t.sandboxId, t.host);
  if (!loaded.ok) return loaded;
  const refusal = refuseInTunnel(loaded.policy, t);
  return refusal ? refused(refusal) : { ok: true, policy: loaded.policy, path: target.path };
}

export type InterceptedContext = Pick<
  EgressContext,
  "policyFor" | "logger" | "audit" | "intercepted" | "forwarding"
>;

export async function handleInterceptedRequest(
  ctx: InterceptedContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const t = ctx.intercepted.get(req.socket);
  if (!t) return void res.destroy();
  const auth = await authorizeInTunnel(ctx, req, t);
  if (!auth.ok) {
    return refuse(ctx.audit, req, res, auth.refusal, { sandboxId: t.sandboxId, port: t.port });
  }
  const { sandboxId, host, port, addresses } = t;
  const outcome = await forward(
    req,
    res,
    { protocol: "https:", host, port, path: auth.path, addresses },
    sandboxId,
    ctx.forwarding,
  );
  const scope = { sandboxId, agentId: auth.policy.agentId, method: req.method ?? "", host, port };
  ctx.audit(outcomeRecord(scope, outcome));
}
