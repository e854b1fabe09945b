import type { IncomingMessage, ServerResponse } from "node:http";
import { PLACEHOLDER_PATTERN } from "@lobu/core";
import { bestEffort } from "@lobu/core/best-effort";
import type { Logger } from "pino";
import { HOP_BY_HOP as PROXY_HOP_BY_HOP } from "../proxy/headers.ts";
import { literalRedactor } from "../proxy/rewrite.ts";
import type { SecretSource } from "../proxy/swap.ts";
import type { PlaceholderLookup } from "../secrets/placeholders.ts";
import {
  KEYLESS,
  type ProviderInfo,
  type ProviderRegistry,
  type ProviderType,
  providerSecretName,
} from "./registry.ts";
import { guardModelCall, type RelayGrant } from "./relay-guard.ts";
import {
  closedUnanswered,
  type UpstreamAnswer,
  type UpstreamCall,
  upstreamCall,
} from "./upstream-call.ts";
import type { TokenUsage } from "./usage.ts";
import { type ProviderWire, type UpstreamRequest, WIRES } from "./wire/index.ts";

export const RELAY_PREFIX = "/__lobu/llm/";
const MAX_BODY = 32 * 1024 * 1024;
/**
 * Not copied to or from the provider: hop-by-hop headers, and the turn's trace
 * context (it is the gateway's; the provider is not told it).
 */
const HOP_BY_HOP = new Set([
  ...PROXY_HOP_BY_HOP,
  "host",
  "content-length",
  "traceparent",
  "tracestate",
]);
/** Not copied to the provider: any credential or signature header of any wire the worker sent. */
const CREDENTIAL_HEADERS = new Set(Object.values(WIRES).flatMap((w) => w.credentialHeaders));
/** Headers whose whole value is a secret when the relay's authentication sets them. */
const SECRET_VALUE_HEADERS = ["x-api-key", "x-goog-api-key", "api-key", "x-amz-security-token"];
/** Shorter values are not redacted from answers: they would match ordinary text. */
const MIN_REDACTED_LENGTH = 8;

/**
 * The secrets the relay's authentication put into `request` (the key, a
 * minted access token, an AWS session token), so the answer can be redacted
 * for them: a provider, or a proxy in front of it, may echo what it received.
 */
function addedSecrets(request: UpstreamRequest, key: string): string[] {
  const out = [key];
  for (const name of SECRET_VALUE_HEADERS) {
    const value = request.headers.get(name);
    if (value) out.push(value);
  }
  const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "");
  if (bearer) out.push(bearer[1]!);
  return out.filter((v) => v.length >= MIN_REDACTED_LENGTH);
}

/**
 * What the relay forwards, per wire (wire/<type>.ts `routes`): model calls
 * (metered) and model listings. Everything else a provider key can do (files,
 * batches, fine-tuning, images, admin...) is refused: a sandbox could otherwise
 * spend the installation's key on work nobody meters.
 */
function routeOf(type: ProviderType, method: string, path: string) {
  return WIRES[type].routes.find((r) => r.method === method && r.path.test(path));
}

export function isRelayed(type: ProviderType, method: string, path: string): boolean {
  return routeOf(type, method, path) !== undefined;
}

/**
 * The real key behind a relay placeholder, or null. Only a relay placeholder
 * issued to this very sandbox for this provider's key, for one turn, buys it:
 * not a proxy placeholder of the same secret, not another sandbox's, not another
 * provider's. Pass the turn-gated lookup (runtime/turn-gate.ts) so that turn
 * must also be the one running now.
 */
export async function relayKey(
  deps: { placeholders: PlaceholderLookup; secrets: SecretSource },
  sandboxId: string,
  providerId: string,
  placeholder: string,
): Promise<string | null> {
  const binding = await deps.placeholders.lookup(placeholder);
  if (
    binding?.purpose !== "relay" ||
    binding.sandboxId !== sandboxId ||
    // Relay placeholders are issued per turn; one without a turn predates that rule.
    !binding.turn ||
    binding.secret.name !== providerSecretName(providerId)
  ) {
    return null;
  }
  return deps.secrets.get(binding.secret);
}

export interface RelayCredential {
  value: string;
  agentId: string;
  /** Who is charged: the sender of the turn running on the sandbox. */
  userKey?: string;
  /** What calls with this credential may ask for (model, output, parallel calls). */
  grant: RelayGrant;
}

export interface UsageRecord extends TokenUsage {
  sandboxId: string;
  agentId: string;
  userKey?: string;
  provider: string;
  model: string;
  status: number;
  durationMs: number;
}

/** A model call about to be relayed, charged to `agentId` and `userKey`. */
export interface ModelCall {
  sandboxId: string;
  agentId: string;
  userKey?: string;
  provider: string;
  model: string;
}

export interface RelayRefusal {
  /** What the person reads: which budget, and when it frees up. */
  message: string;
  /** When it frees up (epoch ms). */
  resetsAt: number;
}

/** Where a model call goes instead when its provider fails (the agent's `fallback`). */
export interface FailoverTarget {
  provider: ProviderInfo;
  model: string;
  /** The key for it, resolved for the turn's agent and sender. */
  key: string;
}

/** A model call moved to a fallback: for the turn (a notice) and the audit log. */
export interface FailoverEvent {
  sandboxId: string;
  agentId: string;
  userKey?: string;
  from: { provider: string; model: string };
  to: { provider: string; model: string };
  /** The primary's HTTP status, or 0 when it could not be reached. */
  status: number;
  reason: string;
}

/**
 * Answers that mean "this provider, not this request": rate limited (429),
 * overloaded (529, 503) or failing (500, 502, 504). A 4xx about the request
 * itself would fail the same way anywhere, so it is passed on.
 */
export const FAILOVER_STATUSES = new Set([429, 500, 502, 503, 504, 529]);

/** A credential the relay could not turn into the provider's authentication. */
class Unauthenticated extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
  }
}

export interface RelayDeps {
  providers: ProviderRegistry;
  /** The real key for a placeholder, if it is bound to this sandbox and provider. */
  credentialFor(
    sandboxId: string,
    providerId: string,
    placeholder: string,
  ): Promise<RelayCredential | null>;
  recordUsage(record: UsageRecord): void;
  /**
   * Admits a model call (usage budgets): null lets it through; a refusal is
   * answered with a provider-shaped 429 the agent's SDK does not retry.
   */
  admit?(call: ModelCall): Promise<RelayRefusal | null>;
  log: Logger;
  /** Sends model calls to providers (default: undici on a shared pool of kept-alive connections). */
  upstream?: UpstreamCall;
  /**
   * The fallbacks of a generating call, in order: same wire format only (the
   * relay forwards the worker's request as it is, with another model and key).
   */
  failoverTargets?(call: ModelCall, type: ProviderType): Promise<FailoverTarget[]>;
  /** A call moved to a fallback (notice in the turn, audit record). */
  onFailover?(event: FailoverEvent): void;
}

/** The relay's own error, in the shape of the provider's (so the worker's SDK reports it). */
function providerError(type: ProviderType, kind: string, message: string, status = 400): string {
  return WIRES[type].errorBody(status, kind, message);
}

function send(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { ...headers, "content-type": "application/json" });
  res.end(body);
}

/** The relay could not get a usable answer from the provider: a 502 in the provider's shape. */
function providerFailure(res: ServerResponse, type: ProviderType, message: string): void {
  send(res, 502, providerError(type, "api_error", message, 502));
}

/**
 * A budget refusal as the provider's own 429. `x-should-retry: false` stops the
 * SDK's retries, and "quota exceeded" in the message is what agent runtimes
 * (pi among them) read as "do not retry": the agent stops, the person is told.
 */
function sendRefusal(res: ServerResponse, type: ProviderType, refusal: RelayRefusal): void {
  const message = `Lobu usage quota exceeded: ${refusal.message}.`;
  send(
    res,
    429,
    type === "anthropic"
      ? providerError(type, "rate_limit_error", message, 429)
      : providerError(type, "insufficient_quota", message, 429),
    {
      "retry-after": String(Math.max(1, Math.ceil((refusal.resetsAt - Date.now()) / 1000))),
      "x-should-retry": "false",
    },
  );
}

async function readBody(req: IncomingMessage): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function placeholderOf(req: IncomingMessage, wire: ProviderWire): string | undefined {
  const candidates = wire.placeholderHeaders
    .flatMap((name) => req.headers[name])
    .filter(Boolean) as string[];
  for (const c of candidates) {
    const m = c.match(PLACEHOLDER_PATTERN);
    if (m) return m[0];
  }
  return undefined;
}

/**
 * The worker's headers minus hop-by-hop ones and every credential or signature
 * it sent. The answer is asked for uncompressed: the relay reads it (usage,
 * redaction), and a model's stream is not compressed anyway.
 */
function forwardedHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || CREDENTIAL_HEADERS.has(name)) continue;
    headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  headers.set("accept-encoding", "identity");
  return headers;
}

/**
 * The LLM relay: workers call `<gateway>/__lobu/llm/<provider>/...` with a
 * placeholder key; the gateway checks the placeholder belongs to this sandbox,
 * swaps in the real key, forwards to the provider's base URL and streams the
 * answer back unbuffered while metering tokens.
 */
export function createProviderRelay(deps: RelayDeps) {
  const callProvider = deps.upstream ?? upstreamCall();
  /** Model calls in flight per sandbox (bounded by the grant's maxParallelCalls). */
  const inFlight = new Map<string, number>();
  return async function relay(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: { sandboxId: string },
  ): Promise<void> {
    const url = new URL(req.url ?? "/", "http://gateway.internal");
    // `..` segments are resolved by now: what is left must still be under the relay.
    if (!url.pathname.startsWith(RELAY_PREFIX)) {
      send(res, 404, providerError("openai", "not_found_error", `no relay at ${url.pathname}`));
      return;
    }
    const rest = url.pathname.slice(RELAY_PREFIX.length);
    const slash = rest.indexOf("/");
    const providerId = slash === -1 ? rest : rest.slice(0, slash);
    const path = slash === -1 ? "" : rest.slice(slash);
    const provider = deps.providers.get(providerId);
    if (!provider) {
      send(
        res,
        404,
        providerError("openai", "not_found_error", `unknown provider "${providerId}"`),
      );
      return;
    }
    const method = req.method ?? "GET";
    const wire = WIRES[provider.type];
    if (!isRelayed(provider.type, method, path)) {
      deps.log.warn(
        { sandboxId: ctx.sandboxId, provider: providerId, method, path: path.slice(0, 200) },
        "relay refused: not a model call",
      );
      send(
        res,
        403,
        providerError(
          provider.type,
          "permission_error",
          `Lobu relays only model calls to ${providerId} (${wire.routes
            .map((r) => r.label)
            .join(", ")}); ${method} ${path.slice(0, 200) || "/"} is not one of them.`,
          403,
        ),
      );
      return;
    }
    const placeholder = placeholderOf(req, wire);
    const credential = placeholder
      ? await deps.credentialFor(ctx.sandboxId, providerId, placeholder)
      : null;
    if (!credential) {
      deps.log.warn(
        { sandboxId: ctx.sandboxId, provider: providerId },
        "relay refused: no valid placeholder",
      );
      send(
        res,
        401,
        providerError(
          provider.type,
          "authentication_error",
          "Lobu: this sandbox has no credential for this provider (relay credentials work only during the turn they were issued for). Ask an admin to configure the provider key, or add your own key in the agent's settings page.",
          401,
        ),
      );
      return;
    }
    const running = inFlight.get(ctx.sandboxId) ?? 0;
    if (running >= credential.grant.maxParallelCalls) {
      deps.log.warn(
        { sandboxId: ctx.sandboxId, provider: providerId, inFlight: running },
        "relay refused: too many model calls in flight",
      );
      res.setHeader("retry-after", "1");
      send(
        res,
        429,
        providerError(
          provider.type,
          "rate_limit_error",
          `Lobu: this sandbox already has ${running} model calls in flight, the limit (max_parallel_model_calls under [agents.${credential.agentId}] in lobu.toml). Wait for one to finish.`,
          429,
        ),
      );
      return;
    }
    inFlight.set(ctx.sandboxId, running + 1);
    try {
      await forward(req, res, ctx, url, provider, path, credential, placeholder as string);
    } finally {
      const left = (inFlight.get(ctx.sandboxId) ?? 1) - 1;
      if (left > 0) inFlight.set(ctx.sandboxId, left);
      else inFlight.delete(ctx.sandboxId);
    }
  };

  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: { sandboxId: string },
    url: URL,
    provider: ProviderInfo,
    path: string,
    credential: RelayCredential,
    placeholder: string,
  ): Promise<void> {
    const providerId = provider.id;
    /** Every secret the relay sent on this call (the primary's and fallbacks'), redacted from the answer. */
    const sent = new Set<string>();
    const wire = WIRES[provider.type];
    const generates = routeOf(provider.type, req.method ?? "GET", path)?.generates === true;
    const raw = req.method === "GET" || req.method === "HEAD" ? undefined : await readBody(req);
    if (raw === null) {
      send(
        res,
        413,
        providerError(provider.type, "request_too_large", "request body too large", 413),
      );
      return;
    }
    const checked = guardModelCall({
      wire,
      agentId: credential.agentId,
      path,
      generates,
      body: raw,
      grant: credential.grant,
    });
    if (!checked.ok) {
      deps.log.warn(
        { sandboxId: ctx.sandboxId, provider: providerId, status: checked.status },
        `relay refused: ${checked.message}`,
      );
      send(
        res,
        checked.status,
        providerError(provider.type, checked.kind, checked.message, checked.status),
      );
      return;
    }
    const { body, model } = checked;
    if (deps.admit && generates) {
      const refusal = await deps.admit({
        sandboxId: ctx.sandboxId,
        agentId: credential.agentId,
        userKey: credential.userKey,
        provider: providerId,
        model,
      });
      if (refusal) {
        deps.log.info({ sandboxId: ctx.sandboxId, provider: providerId }, "relay refused: budget");
        sendRefusal(res, provider.type, refusal);
        return;
      }
    }
    const started = Date.now();
    const abort = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    /**
     * The request for one attempt, to `target` with its key (the primary, or a
     * fallback after a failover), authenticated as its wire requires. A
     * credential that cannot be used (a malformed key, no token) rejects with
     * an `Unauthenticated`.
     */
    const prepare = async (
      target: { provider: ProviderInfo; key: string },
      payload: Uint8Array | undefined,
      callPath: string,
    ): Promise<UpstreamRequest> => {
      try {
        const upstreamPath = wire.upstreamPath?.(callPath, target.provider, target.key) ?? callPath;
        const request: UpstreamRequest = {
          method: req.method ?? "GET",
          url: new URL(`${target.provider.baseUrl}${upstreamPath}${url.search}`),
          headers: forwardedHeaders(req),
          body: payload,
        };
        // A local server set up without a key gets none (registry.ts, KEYLESS).
        // The provider's own authentication, added last: a signature covers the exact body sent.
        if (target.key !== KEYLESS) {
          await wire.authenticate(request, target.key, target.provider);
          for (const value of addedSecrets(request, target.key)) sent.add(value);
        }
        return request;
      } catch (err) {
        throw new Unauthenticated(err as Error);
      }
    };
    const call = async (
      target: { provider: ProviderInfo; key: string },
      payload: Uint8Array | undefined,
      callPath: string,
    ): Promise<UpstreamAnswer> => {
      const request = await prepare(target, payload, callPath);
      try {
        return await callProvider(request, abort.signal);
      } catch (err) {
        if (abort.signal.aborted || !closedUnanswered(err)) throw err;
        // A kept-alive connection the provider closed as the call went out (its idle
        // timeout and our reuse crossing; under load, many turns failed this way):
        // nothing was answered, so the call goes once more, on a new connection.
        deps.log.debug(
          { provider: target.provider.id },
          "provider closed the connection unanswered; calling again",
        );
        return await callProvider(request, abort.signal);
      }
    };
    let upstream: UpstreamAnswer | undefined;
    let failure: Error | undefined;
    try {
      upstream = await call(
        { provider, key: credential.value },
        body ? new Uint8Array(body) : undefined,
        path,
      );
    } catch (err) {
      if (err instanceof Unauthenticated) {
        deps.log.error({ err: err.cause, provider: providerId }, "provider credential unusable");
        providerFailure(
          res,
          provider.type,
          `Lobu could not authenticate to the ${providerId} provider: ${err.message}. Check the provider key (docs/providers.md).`,
        );
        return;
      }
      failure = err as Error;
      deps.log.error({ err, provider: providerId }, "provider unreachable");
    }
    // The answered provider and model: the primary's, or a fallback's after a failover.
    let answered = { provider, model };
    if (
      (failure || (upstream && FAILOVER_STATUSES.has(upstream.status))) &&
      deps.failoverTargets &&
      body &&
      generates &&
      !abort.signal.aborted
    ) {
      const moved = await failover(
        ctx,
        credential,
        { provider, model, body, path, signal: abort.signal },
        { upstream, failure },
        call,
      );
      if (moved) {
        ({ upstream, failure } = moved);
        answered = moved.answered;
      }
    }
    if (!upstream) {
      providerFailure(
        res,
        provider.type,
        `Lobu could not reach the ${providerId} provider: ${failure?.message ?? "no answer"}`,
      );
      return;
    }
    if (upstream.coding === "opaque") {
      // Redaction cannot see into it: a key echoed inside would reach the worker.
      await upstream.discard().catch(
        bestEffort(deps.log, "connection of a refused model answer not released", {
          sandboxId: ctx.sandboxId,
        }),
      );
      const coding = String(upstream.headers["content-encoding"]);
      providerFailure(
        res,
        provider.type,
        `Lobu cannot pass on the ${providerId} provider's answer: it is encoded as "${coding.slice(0, 100)}", which the relay cannot decode to check it`,
      );
      return;
    }
    // The sandbox gets its placeholder back wherever the answer echoes a secret the relay sent.
    const redactor = sent.size
      ? literalRedactor([...sent].map((value): [string, string] => [value, placeholder]))
      : null;
    const redact = (v: string) => (redactor ? redactor.redact(v) : v);
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (HOP_BY_HOP.has(name) || (upstream.coding === "decoded" && name === "content-encoding"))
        continue;
      headers[name] = Array.isArray(value) ? value.map(redact) : redact(value);
    }
    res.writeHead(upstream.status, headers);
    const meter = wire.usage(String(upstream.headers["content-type"] ?? ""));
    const answer = upstream;
    let recorded = false;
    const record = () => {
      const usage = meter.finish();
      deps.recordUsage({
        ...usage,
        sandboxId: ctx.sandboxId,
        agentId: credential.agentId,
        userKey: credential.userKey,
        provider: answered.provider.id,
        model: answered.model,
        status: answer.status,
        durationMs: Date.now() - started,
      });
      deps.log.debug(
        {
          sandboxId: ctx.sandboxId,
          provider: providerId,
          model: answered.model,
          status: answer.status,
          inputTokens: usage.inputTokens,
          outputTokens: usage.outputTokens,
        },
        "relayed model call",
      );
    };
    try {
      let carry = "";
      for await (const chunk of upstream.body) {
        meter.push(chunk);
        // Count the call before the worker sees its end (not when the connection
        // closes): the turn, and the budget check of the next call, come after it.
        if (meter.ended && !recorded) {
          recorded = true;
          record();
        }
        if (!redactor) {
          res.write(chunk);
          continue;
        }
        const [emit, rest] = redactor.step(carry + chunk.toString("latin1"));
        carry = rest;
        if (emit) res.write(Buffer.from(emit, "latin1"));
      }
      res.end(carry ? Buffer.from(carry, "latin1") : undefined);
    } catch (err) {
      if (!abort.signal.aborted)
        deps.log.warn({ err, provider: providerId }, "provider stream broke");
      res.destroy();
    } finally {
      if (!recorded) record();
    }
  }

  /**
   * Try the agent's fallbacks in order after the primary failed: the same
   * request with the fallback's model, to the fallback's provider with its
   * key. The first answer that is not itself a provider failure is streamed
   * to the worker, which never sees the primary's error (nothing of it was
   * sent yet). Undefined when there is no fallback to try.
   */
  async function failover(
    ctx: { sandboxId: string },
    credential: RelayCredential,
    primary: {
      provider: ProviderInfo;
      model: string;
      body: Buffer;
      path: string;
      signal: AbortSignal;
    },
    first: { upstream: UpstreamAnswer | undefined; failure: Error | undefined },
    call: (
      target: { provider: ProviderInfo; key: string },
      payload: Uint8Array | undefined,
      path: string,
    ) => Promise<UpstreamAnswer>,
  ): Promise<
    | {
        upstream: UpstreamAnswer | undefined;
        failure: Error | undefined;
        answered: { provider: ProviderInfo; model: string };
      }
    | undefined
  > {
    const { model, body } = primary;
    const targets = await deps.failoverTargets!(
      {
        sandboxId: ctx.sandboxId,
        agentId: credential.agentId,
        userKey: credential.userKey,
        provider: primary.provider.id,
        model,
      },
      primary.provider.type,
    );
    if (targets.length === 0) return undefined;
    let from = { provider: primary.provider.id, model };
    let last: { upstream: UpstreamAnswer | undefined; failure: Error | undefined } = first;
    let answered = { provider: primary.provider, model };
    for (const target of targets) {
      // The worker went away (a stopped turn): nobody to answer.
      if (primary.signal.aborted) break;
      const status = last.upstream?.status ?? 0;
      const reason = last.failure
        ? `unreachable (${last.failure.message})`
        : `HTTP ${status}${status === 429 ? " (rate limited)" : status === 529 || status === 503 ? " (overloaded)" : ""}`;
      // The failed answer is not read: release its connection.
      await last.upstream?.discard().catch(
        bestEffort(deps.log, "connection of a failed model answer not released", {
          sandboxId: ctx.sandboxId,
        }),
      );
      const to = { provider: target.provider.id, model: target.model };
      deps.log.warn(
        { sandboxId: ctx.sandboxId, from, to, status },
        "relay failover: provider failed, trying the next fallback",
      );
      deps.onFailover?.({
        sandboxId: ctx.sandboxId,
        agentId: credential.agentId,
        ...(credential.userKey ? { userKey: credential.userKey } : {}),
        from,
        to,
        status,
        reason,
      });
      // The same wire (failover.ts): only the model changes, where the call names it.
      const wire = WIRES[target.provider.type];
      const call2 = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      if (!wire.pathWithModel || typeof call2.model === "string") call2.model = target.model;
      const path2 = wire.pathWithModel?.(primary.path, target.model) ?? primary.path;
      try {
        last = {
          upstream: await call(target, new TextEncoder().encode(JSON.stringify(call2)), path2),
          failure: undefined,
        };
      } catch (err) {
        last = { upstream: undefined, failure: err as Error };
      }
      answered = { provider: target.provider, model: target.model };
      from = to;
      if (last.upstream && !FAILOVER_STATUSES.has(last.upstream.status)) break;
    }
    return { ...last, answered };
  }
}
