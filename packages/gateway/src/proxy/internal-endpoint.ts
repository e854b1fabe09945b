import type { IncomingMessage, ServerResponse } from "node:http";
import type { RecordAudit } from "./audit-records.ts";
import { wantsJson } from "./explain.ts";
import { loadAgent, type PolicySource } from "./policy.ts";
import { badRequest, refuse, writeRefusal } from "./refusals.ts";

/**
 * `/__lobu/*` on the egress socket: the gateway's internal API for sandboxes
 * (the LLM relay, the MCP proxy), handed the sandbox and agent the socket
 * identified. Every call is audited as `internal`.
 */

export interface InternalContext {
  sandboxId: string;
  agentId: string;
}

export type InternalHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  ctx: InternalContext,
) => void | Promise<void>;

export const INTERNAL_PREFIX = "/__lobu/";

export interface InternalEndpointContext extends PolicySource {
  audit: RecordAudit;
  internal?: InternalHandler;
}

export async function handleInternal(
  ctx: InternalEndpointContext,
  req: IncomingMessage,
  res: ServerResponse,
  sandboxId: string,
): Promise<void> {
  // Only who is calling: the relay and the MCP proxy apply their own rules.
  const loaded = await loadAgent(ctx, sandboxId, "");
  if (!loaded.ok) return refuse(ctx.audit, req, res, loaded.refusal, { sandboxId, port: 0 });
  const { agentId } = loaded;
  ctx.audit({
    sandboxId,
    agentId,
    method: req.method ?? "",
    host: "__lobu",
    port: 0,
    decision: "internal",
    reason: (req.url ?? "").split("?")[0]!,
  });
  if (!ctx.internal) {
    // Its record is the `internal` one above.
    const reason = "no internal API is attached to this egress endpoint";
    return writeRefusal(res, badRequest("__lobu", reason, 404), wantsJson(req.headers));
  }
  await ctx.internal(req, res, { sandboxId, agentId });
}
