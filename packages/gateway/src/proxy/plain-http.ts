import type { IncomingMessage, ServerResponse } from "node:http";
import { outcomeRecord } from "./audit-records.ts";
import type { EgressContext } from "./context.ts";
import type { Refusal } from "./explain.ts";
import { forward } from "./forward.ts";
import { defaultPort } from "./headers.ts";
import { identifySandbox } from "./identity.ts";
import {
  handleInternal,
  INTERNAL_PREFIX,
  type InternalEndpointContext,
} from "./internal-endpoint.ts";
import { authorizeHost } from "./policy.ts";
import { badRequest, refuse } from "./refusals.ts";

/**
 * A request sent to the proxy itself (not inside a tunnel): an absolute-form
 * `http://` or `https://` request to forward, or the internal API.
 */

/** What a plain request's target asks for. */
export type PlainTarget =
  | { kind: "internal"; path: string }
  | { kind: "forward"; protocol: "http:" | "https:"; hostname: string; port: number; path: string }
  | { kind: "refused"; refusal: Refusal };

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

/** Classify a request target (`req.url`): internal API, a URL to forward, or a refusal. */
export function classifyTarget(target: string): PlainTarget {
  if (target.startsWith("/")) {
    if (target.startsWith(INTERNAL_PREFIX)) return { kind: "internal", path: target };
    return {
      kind: "refused",
      refusal: badRequest(
        "",
        `"${target.slice(0, 100)}" is not a proxy request. This is the Lobu egress proxy: send absolute URLs through it (HTTP_PROXY/HTTPS_PROXY are set), or use CONNECT for TLS; only /__lobu/* is served directly`,
      ),
    };
  }
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return { kind: "refused", refusal: badRequest("", "the request target is not a valid URL") };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    const reason = `${url.protocol} URLs are not supported by the proxy`;
    return { kind: "refused", refusal: badRequest(url.hostname, reason) };
  }
  const path = `${url.pathname}${url.search}`;
  // With NO_PROXY empty, the worker's own calls to the forwarder arrive in absolute form.
  if (LOOPBACK_NAMES.has(url.hostname) && url.pathname.startsWith(INTERNAL_PREFIX)) {
    return { kind: "internal", path };
  }
  const protocol = url.protocol;
  const port = url.port ? Number(url.port) : defaultPort(protocol);
  return { kind: "forward", protocol, hostname: url.hostname, port, path };
}

export type PlainHttpContext = InternalEndpointContext &
  Pick<EgressContext, "identity" | "poolMember" | "resolver" | "forwarding">;

export async function handlePlainRequest(
  ctx: PlainHttpContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const id = identifySandbox(ctx, req.headers, false);
  if (!id.ok) return refuse(ctx.audit, req, res, id.refusal, { sandboxId: null, port: 0 });
  const { sandboxId } = id;
  const target = classifyTarget(req.url ?? "");
  if (target.kind === "refused") {
    return refuse(ctx.audit, req, res, target.refusal, { sandboxId, port: 0 });
  }
  if (target.kind === "internal") {
    // The internal API reads its route from the origin form.
    req.url = target.path;
    return handleInternal(ctx, req, res, sandboxId);
  }
  const { protocol, port, path } = target;
  const auth = await authorizeHost(ctx, sandboxId, target.hostname);
  if (!auth.ok) return refuse(ctx.audit, req, res, auth.refusal, { sandboxId, port });
  const { host, addresses, policy } = auth;
  const outcome = await forward(
    req,
    res,
    { protocol, host, port, path, addresses },
    sandboxId,
    ctx.forwarding,
  );
  const scope = { sandboxId, agentId: policy.agentId, method: req.method ?? "", host, port };
  ctx.audit(outcomeRecord(scope, outcome));
}
