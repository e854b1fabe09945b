import { modelMatches } from "./model-access.ts";
import type { ProviderType } from "./registry.ts";

/**
 * What the LLM relay lets one model call ask for. The worker lives in the
 * sandbox, so its requests are the agent's: the relay, not the worker, holds
 * the line on which model is called, how much output one call may produce,
 * and how many calls run at once.
 */
export interface RelayGrant {
  /** Models the call may name: the turn's own, then the agent's `models` (a trailing `*`: a prefix). */
  models: string[];
  maxOutputTokens: number;
  maxParallelCalls: number;
}

export type GuardResult =
  | { ok: true; body: Buffer | undefined; model: string }
  | { ok: false; status: number; kind: string; message: string };

/** Fields that bound a call's output, per API. */
const OUTPUT_FIELDS: Record<ProviderType, string[]> = {
  anthropic: ["max_tokens"],
  openai: ["max_tokens", "max_completion_tokens"],
};

/** The generating endpoint per API, and the field that bounds it when a call leaves it out. */
const GENERATING: Record<ProviderType, { path: string; field: string }> = {
  anthropic: { path: "/v1/messages", field: "max_tokens" },
  openai: { path: "/chat/completions", field: "max_completion_tokens" },
};

function refuse(status: number, kind: string, message: string): GuardResult {
  return { ok: false, status, kind, message };
}

/**
 * Check a model call's body against the grant. Returns the body to forward:
 * re-serialized from what was checked, so the provider parses exactly what the
 * relay judged (no duplicate keys or other parser differences), with an output
 * output bound added when a generating call leaves it out.
 * Over-limit output requests are refused, not clamped: a clamped call would
 * stop early without the agent knowing why.
 */
export function guardModelCall(opts: {
  type: ProviderType;
  agentId: string;
  /** The relayed path (`/v1/messages`, `/chat/completions`, ...). */
  path: string;
  body: Buffer | undefined;
  grant: RelayGrant;
}): GuardResult {
  const { type, agentId, grant } = opts;
  const where = `[agents.${agentId}] in lobu.toml`;
  if (opts.body === undefined) return { ok: true, body: undefined, model: "" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(opts.body.toString("utf8"));
  } catch {
    return refuse(400, "invalid_request_error", "Lobu: the request body is not valid JSON.");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return refuse(400, "invalid_request_error", "Lobu: the request body must be a JSON object.");
  }
  const call = parsed as Record<string, unknown>;
  const model = call.model;
  if (typeof model !== "string" || !grant.models.some((m) => modelMatches(m, model))) {
    return refuse(
      403,
      "permission_error",
      `Lobu: this agent may call ${grant.models.map((m) => `"${m}"`).join(", ")} only, not ${
        typeof model === "string" ? `"${model.slice(0, 200)}"` : "a call without a model"
      }. An operator can allow more with models = [...] under ${where}.`,
    );
  }
  let bounded = false;
  for (const field of OUTPUT_FIELDS[type]) {
    if (!(field in call)) continue;
    const value = call[field];
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      return refuse(
        400,
        "invalid_request_error",
        `Lobu: ${field} must be a positive integer (at most ${grant.maxOutputTokens}).`,
      );
    }
    if (value > grant.maxOutputTokens) {
      return refuse(
        400,
        "invalid_request_error",
        `Lobu: ${field} ${value} is over this agent's limit of ${grant.maxOutputTokens} output tokens per call (max_output_tokens under ${where}).`,
      );
    }
    bounded = true;
  }
  // More than one choice multiplies the output of one call.
  if (type === "openai" && "n" in call && call.n !== 1) {
    return refuse(
      400,
      "invalid_request_error",
      "Lobu: the relay allows one choice per call (n = 1).",
    );
  }
  const generates = GENERATING[type];
  if (!bounded && opts.path === generates.path) call[generates.field] = grant.maxOutputTokens;
  return { ok: true, body: Buffer.from(JSON.stringify(call)), model };
}
