/**
 * The Slack emulator's HTTP surface: Web API dispatch (auth, rate limits,
 * injected failures, recording), the external upload URL, private file
 * downloads, response_url and the OAuth authorize redirect.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { decodeJsonFields, parseBody } from "../platform-kit/body.ts";
import { dropConnection, readRaw, sendJson, sendText } from "../platform-kit/http.ts";
import type { FailureQueue, RateLimiter } from "../platform-kit/rate-limit.ts";
import { newBotMessage, snapshot } from "./api-support.ts";
import { checkBlocks, normalizeBlocks } from "./blocks.ts";
import type { SlackWorld } from "./state.ts";
import type {
  SlackCall,
  SlackFailure,
  SlackInstallation,
  SlackOAuthCodeInput,
  SlackRateLimitRule,
  SlackResponseUrlPost,
} from "./types.ts";
import {
  type ApiCall,
  Args,
  METHODS,
  type ResponseUrlTarget,
  SlackApiError,
  type SlackBackend,
} from "./web-api.ts";
import { messageJson } from "./wire.ts";

/** Emulator state the HTTP handlers work on. */
export interface SlackHost {
  backend: SlackBackend;
  world: SlackWorld;
  appToken?: string;
  clientId?: string;
  calls: SlackCall[];
  responseUrlPosts: SlackResponseUrlPost[];
  failures: FailureQueue<SlackFailure>;
  limiter: RateLimiter;
  rateLimits: Record<string, SlackRateLimitRule> | false | undefined;
  responseUrls: Map<string, ResponseUrlTarget>;
  authorizeAs(): SlackOAuthCodeInput;
  issueOAuthCode(input: SlackOAuthCodeInput): string;
  installForTeam(teamId: string): SlackInstallation;
  notify(): void;
  /** A lower limit than Slack's 40,000 characters on message text (a test's fault), if set. */
  textLimit(): number | undefined;
}

/** Methods whose `text` (or `markdown_text`) Slack refuses with msg_too_long when too long. */
const TEXT_METHODS = new Set([
  "chat.postMessage",
  "chat.update",
  "chat.postEphemeral",
  "chat.startStream",
  "chat.appendStream",
  "chat.stopStream",
]);

function tooLong(host: SlackHost, method: string, args: Record<string, unknown>): boolean {
  const limit = host.textLimit();
  if (limit === undefined || !TEXT_METHODS.has(method)) return false;
  const text = args.text ?? args.markdown_text;
  return typeof text === "string" && text.length > limit;
}

export async function route(
  host: SlackHost,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const path = url.pathname;
  if (path.startsWith("/api/")) return handleApi(host, req, res, url);
  if (path.startsWith("/upload/v1/") && req.method === "POST")
    return handleUpload(host, req, res, path);
  if (path.startsWith("/files-pri/") && req.method === "GET")
    return handleFileDownload(host, req, res, path);
  if ((path.startsWith("/actions/") || path.startsWith("/commands/")) && req.method === "POST") {
    return handleResponseUrl(host, req, res, path);
  }
  if (path === "/oauth/v2/authorize" && req.method === "GET")
    return handleAuthorize(host, res, url);
  sendText(res, 404, "Not Found");
}

async function handleApi(
  host: SlackHost,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const method = decodeURIComponent(url.pathname.slice("/api/".length));
  const raw = await readRaw(req);
  const body = parseBody(raw, req.headers["content-type"]);
  const rawArgs: Record<string, unknown> = Object.fromEntries(url.searchParams);
  const warnings: string[] = [];
  let early: string | undefined;
  if (raw.length > 0) {
    if (!body.mediaType) early = "missing_post_type";
    else if (body.error) early = body.error;
    else if (body.kind === "json") {
      if (typeof body.json !== "object" || body.json === null || Array.isArray(body.json)) {
        early = "invalid_json";
      } else {
        Object.assign(rawArgs, body.json);
        if (!body.charset) warnings.push("missing_charset");
      }
    } else if (body.kind === "form" || body.kind === "multipart") {
      Object.assign(rawArgs, body.fields);
      for (const file of body.files) rawArgs[file.field] = file.data;
    } else if (body.mediaType !== "text/plain") {
      early = "invalid_post_type";
    }
  }

  // Slack reads the token from the Authorization header, or from the body of
  // form requests; a token inside a JSON body is not honoured.
  const bearer = /^Bearer\s+(\S+)/i.exec(req.headers.authorization ?? "");
  let token: string | undefined;
  let tokenSource: "header" | "body" | undefined;
  if (bearer?.[1]) {
    token = bearer[1];
    tokenSource = "header";
  } else if (body.kind !== "json" && typeof rawArgs.token === "string") {
    token = rawArgs.token;
    tokenSource = "body";
  }
  delete rawArgs.token;

  const spec = METHODS[method];
  let status = 200;
  let response: Record<string, unknown>;
  const headers: Record<string, string> = {};
  let install: SlackInstallation | undefined;
  const failure = host.failures.take(method);

  if (failure?.network) {
    recordCall(host, method, rawArgs, token, tokenSource, undefined, body.mediaType, 0, {});
    dropConnection(res);
    return;
  }
  if (failure) {
    if (failure.retryAfter !== undefined) {
      status = 429;
      headers["Retry-After"] = String(failure.retryAfter);
      response = { ok: false, error: "ratelimited" };
    } else {
      status = failure.status ?? 200;
      response = { ok: false, error: failure.error ?? "fatal_error", ...failure.extra };
    }
  } else if (tooLong(host, method, rawArgs)) {
    response = { ok: false, error: "msg_too_long" };
  } else if (!spec) {
    response = { ok: false, error: "unknown_method", req_method: method };
  } else if (early) {
    response = { ok: false, error: early };
  } else {
    const auth = authenticate(host, spec.auth, token);
    if ("error" in auth) {
      response = { ok: false, error: auth.error };
    } else {
      install = auth.install;
      const limited = rateLimit(host, method, spec.rate, install, rawArgs);
      if (spec.scope && install && !install.scopes.includes(spec.scope)) {
        response = {
          ok: false,
          error: "missing_scope",
          needed: spec.scope,
          provided: install.scopes.join(","),
        };
      } else if (limited !== undefined) {
        status = 429;
        headers["Retry-After"] = String(limited);
        response = { ok: false, error: "ratelimited" };
      } else {
        const call: ApiCall = {
          method,
          args: new Args(rawArgs),
          ...(install ? { install } : {}),
          ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        };
        try {
          response = spec.handler(call, host.backend);
        } catch (err) {
          if (!(err instanceof SlackApiError)) throw err;
          response = { ok: false, error: err.code, ...err.extra };
        }
      }
    }
  }
  if (warnings.length > 0) {
    response.warning = warnings.join(",");
    const meta = (response.response_metadata as Record<string, unknown> | undefined) ?? {};
    response.response_metadata = { ...meta, warnings };
  }
  if (install) {
    headers["X-OAuth-Scopes"] = install.scopes.join(",");
    headers["X-Accepted-OAuth-Scopes"] = "";
  }
  recordCall(host, method, rawArgs, token, tokenSource, install, body.mediaType, status, response);
  sendJson(res, status, response, headers);
}

function authenticate(
  host: SlackHost,
  kind: "bot" | "none" | "app",
  token: string | undefined,
): { install?: SlackInstallation } | { error: string } {
  if (kind === "none") return {};
  if (!token) return { error: "not_authed" };
  if (kind === "app") {
    if (host.appToken && token === host.appToken) return {};
    return {
      error: host.world.installations.has(token) ? "not_allowed_token_type" : "invalid_auth",
    };
  }
  const install = host.world.installations.get(token);
  if (!install) {
    return {
      error: host.appToken && token === host.appToken ? "not_allowed_token_type" : "invalid_auth",
    };
  }
  if (install.revoked) return { error: "token_revoked" };
  return { install };
}

/** Seconds to wait when over the method's limit, else undefined. */
function rateLimit(
  host: SlackHost,
  method: string,
  defaultRule: SlackRateLimitRule,
  install: SlackInstallation | undefined,
  args: Record<string, unknown>,
): number | undefined {
  const overrides = host.rateLimits;
  if (overrides === false) return undefined;
  const rule = overrides?.[method] ?? defaultRule;
  let key = `${method}:${install?.teamId ?? "app"}`;
  if (rule.per === "channel") key += `:${String(args.channel ?? "")}`;
  const decision = host.limiter.hit(key, rule);
  return decision.limited ? decision.retryAfterSec : undefined;
}

function recordCall(
  host: SlackHost,
  method: string,
  args: Record<string, unknown>,
  token: string | undefined,
  tokenSource: "header" | "body" | undefined,
  install: SlackInstallation | undefined,
  contentType: string,
  httpStatus: number,
  response: Record<string, unknown>,
): void {
  host.calls.push({
    method,
    args: decodeJsonFields(args),
    contentType,
    httpStatus,
    response,
    at: Date.now(),
    ...(token ? { token } : {}),
    ...(tokenSource ? { tokenSource } : {}),
    ...(install ? { teamId: install.teamId } : {}),
  });
  host.notify();
}

async function handleUpload(
  host: SlackHost,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<void> {
  const fileId = path.slice("/upload/v1/".length);
  const file = host.world.files.get(fileId);
  const raw = await readRaw(req);
  if (!file) {
    sendText(res, 404, "Not Found");
    return;
  }
  const body = parseBody(raw, req.headers["content-type"]);
  const data =
    body.kind === "multipart"
      ? (body.files[0]?.data ?? Buffer.from(Object.values(body.fields)[0] ?? ""))
      : raw;
  file.data = data;
  file.size = data.length;
  file.uploaded = true;
  host.notify();
  sendText(res, 200, `OK - ${data.length}`);
}

function handleFileDownload(
  host: SlackHost,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): void {
  // /files-pri/<team>-<file>/<name> or /files-pri/<team>-<file>/download/<name>
  const key = path.split("/")[2] ?? "";
  const [teamId, fileId] = key.split("-");
  const file = fileId ? host.world.files.get(fileId) : undefined;
  const bearer = /^Bearer\s+(\S+)/i.exec(req.headers.authorization ?? "")?.[1];
  const install = bearer ? host.world.installations.get(bearer) : undefined;
  if (
    !install ||
    install.revoked ||
    install.teamId !== teamId ||
    !install.scopes.includes("files:read")
  ) {
    // Slack answers unauthenticated (or unscoped) file fetches with its sign-in page, not an error.
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(
      "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>",
    );
    return;
  }
  if (!file || file.teamId !== teamId) {
    sendText(res, 404, "Not Found");
    return;
  }
  res.writeHead(200, {
    "content-type": file.mimetype,
    "content-length": file.data.length,
    "content-disposition": `attachment; filename="${file.name}"`,
  });
  res.end(file.data);
}

async function handleResponseUrl(
  host: SlackHost,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<void> {
  const id = path.split("/")[3] ?? "";
  const target = host.responseUrls.get(id);
  const raw = await readRaw(req);
  if (!target) {
    sendJson(res, 404, { ok: false, error: "expired_url" });
    return;
  }
  const parsed = parseBody(raw, req.headers["content-type"]);
  let body: Record<string, unknown> = {};
  if (parsed.kind === "json" && typeof parsed.json === "object" && parsed.json) {
    body = parsed.json as Record<string, unknown>;
  } else if (parsed.kind === "form" && parsed.fields.payload) {
    try {
      body = JSON.parse(parsed.fields.payload);
    } catch {
      sendJson(res, 400, { ok: false, error: "invalid_payload" });
      return;
    }
  } else {
    sendJson(res, 400, { ok: false, error: "invalid_payload" });
    return;
  }
  if (target.uses >= 5) {
    sendJson(res, 404, { ok: false, error: "used_url" });
    return;
  }
  target.uses++;
  host.responseUrlPosts.push({
    id,
    body,
    channel: target.channel,
    at: Date.now(),
    ...(target.messageTs ? { messageTs: target.messageTs } : {}),
  });
  const result = applyResponse(host, target, body);
  host.notify();
  if (result) {
    sendJson(res, 200, { ok: false, error: result });
    return;
  }
  sendJson(res, 200, { ok: true });
}

/** response_url semantics: replace/delete the source message, or post a new one. */
function applyResponse(
  host: SlackHost,
  target: ResponseUrlTarget,
  body: Record<string, unknown>,
): string | undefined {
  const original = target.messageTs
    ? host.world.findMessage(target.channel, target.messageTs)
    : undefined;
  const text = typeof body.text === "string" ? body.text : undefined;
  let blocks: Record<string, unknown>[] | undefined;
  if (body.blocks !== undefined) {
    const check = checkBlocks(body.blocks);
    if (!check.ok) return check.error;
    blocks = normalizeBlocks(check.blocks);
  }
  if (body.delete_original === true || body.delete_original === "true") {
    if (original && !original.deleted) {
      const previous = messageJson(host.backend, original);
      original.deleted = true;
      host.backend.echo("deleted", original, previous);
    }
    return undefined;
  }
  if ((body.replace_original === true || body.replace_original === "true") && original) {
    const previous = messageJson(host.backend, original);
    snapshot(original);
    original.text = text ?? "";
    original.blocks = blocks;
    original.editedTs = host.world.clock.next();
    host.backend.echo("changed", original, previous);
    return undefined;
  }
  const install = host.installForTeam(target.teamId);
  if (body.response_type === "in_channel") {
    const threadTs = typeof body.thread_ts === "string" ? body.thread_ts : target.threadTs;
    const posted = newBotMessage(
      host.backend,
      install,
      { id: target.channel },
      {
        text: text ?? "",
        ...(blocks ? { blocks } : {}),
        ...(threadTs ? { threadTs } : {}),
        postedVia: "response_url",
      },
    );
    host.backend.echo("new", posted);
    return undefined;
  }
  host.world.ephemerals.push({
    channel: target.channel,
    user: target.userId,
    messageTs: host.world.clock.next(),
    text: text ?? "",
    ...(blocks ? { blocks } : {}),
    ...(target.threadTs ? { threadTs: target.threadTs } : {}),
    via: "response_url",
    at: Date.now(),
  });
  return undefined;
}

function handleAuthorize(host: SlackHost, res: ServerResponse, url: URL): void {
  const clientId = url.searchParams.get("client_id");
  const redirectUri = url.searchParams.get("redirect_uri");
  if (!host.clientId || clientId !== host.clientId) {
    sendText(res, 400, "invalid_client_id", { "content-type": "text/html" });
    return;
  }
  if (!redirectUri) {
    sendText(res, 400, "bad_redirect_uri", { "content-type": "text/html" });
    return;
  }
  const scopes = (url.searchParams.get("scope") ?? "").split(/[ ,]+/).filter(Boolean);
  const userScopes = (url.searchParams.get("user_scope") ?? "").split(/[ ,]+/).filter(Boolean);
  const code = host.issueOAuthCode({
    ...host.authorizeAs(),
    ...(scopes.length ? { scopes } : {}),
    ...(userScopes.length ? { userScopes } : {}),
    redirectUri,
  });
  const target = new URL(redirectUri);
  target.searchParams.set("code", code);
  const state = url.searchParams.get("state");
  if (state !== null) target.searchParams.set("state", state);
  res.writeHead(302, { location: target.toString() });
  res.end();
}
