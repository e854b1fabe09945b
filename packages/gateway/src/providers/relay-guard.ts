import { modelMatches } from "./model-access.ts";
import type { ProviderWire } from "./wire/index.ts";

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

/** A field at a dot path (`generationConfig.maxOutputTokens`), if present. */
function getPath(obj: Record<string, unknown>, path: string): { found: boolean; value: unknown } {
  let at: unknown = obj;
  for (const part of path.split(".")) {
    if (at === null || typeof at !== "object" || Array.isArray(at) || !(part in at))
      return { found: false, value: undefined };
    at = (at as Record<string, unknown>)[part];
  }
  return { found: true, value: at };
}

/** Sets a field at a dot path, making the objects on the way; false if one is not an object. */
function setPath(obj: Record<string, unknown>, path: string, value: unknown): boolean {
  const parts = path.split(".");
  let at = obj;
  for (const part of parts.slice(0, -1)) {
    const next = at[part] ?? {};
    if (next === null || typeof next !== "object" || Array.isArray(next)) return false;
    at[part] = next;
    at = next as Record<string, unknown>;
  }
  at[parts.at(-1)!] = value;
  return true;
}

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
  wire: ProviderWire;
  agentId: string;
  /** The relayed path (`/v1/messages`, `/chat/completions`, ...). */
  path: string;
  /** The call makes the model generate: an output bound is added when it gives none. */
  generates: boolean;
  body: Buffer | undefined;
  grant: RelayGrant;
}): GuardResult {
  const { wire, agentId, grant } = opts;
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
  // The model is named in the body or, for Gemini and Bedrock, in the path.
  const model = wire.modelOf(opts.path, call);
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
  for (const field of wire.outputFields) {
    const { found, value } = getPath(call, field);
    if (!found) continue;
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
  const choices = wire.choicesField ? getPath(call, wire.choicesField) : undefined;
  if (choices?.found && choices.value !== 1) {
    return refuse(
      400,
      "invalid_request_error",
      `Lobu: the relay allows one answer per call (${wire.choicesField} = 1).`,
    );
  }
  if (!bounded && opts.generates && !setPath(call, wire.outputFields[0]!, grant.maxOutputTokens)) {
    return refuse(
      400,
      "invalid_request_error",
      `Lobu: ${wire.outputFields[0]} cannot be set: a field on its path is not an object.`,
    );
  }
  return { ok: true, body: Buffer.from(JSON.stringify(call)), model };
}
