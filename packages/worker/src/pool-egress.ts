import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
} from "node:http";
import { request as httpsRequest } from "node:https";
import { createConnection, type Socket } from "node:net";
import { Readable } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import * as undici from "undici";

/**
 * Networking of a pool process (virtual sandboxes). The pool shares one egress
 * socket for all its sandboxes, and the proxy behind it believes whatever
 * sandbox a request names. So the name is set here, by the pool's own code,
 * never by the agent: curl in the virtual shell and pi's model calls both go
 * through functions that overwrite it. No TCP listener exists in pool mode (a
 * loopback forwarder would let any local process speak as any sandbox).
 */

/** Headers an agent may never send: they name or authenticate the sandbox to the proxy. */
type HeadersLike = NonNullable<RequestInit["headers"]>;
type BodyLike = RequestInit["body"];

const IDENTITY_HEADERS = new Set(["x-lobu-sandbox", "proxy-authorization", "proxy-connection"]);

/** The base URL pi's model calls use in pool mode; the host is never resolved. */
export const POOL_GATEWAY_URL = "http://lobu-egress.invalid";

/**
 * Send every `fetch` of this process over the egress socket (pi's model calls
 * go to `${POOL_GATEWAY_URL}/__lobu/llm/...` and carry the sandbox header pi was
 * configured with). npm undici's fetch is installed with its dispatcher, as pi's
 * own CLI does, so fetch and dispatcher come from one implementation; the model
 * calls themselves take the shorter path of `gatewayFetch`.
 */
export function routeFetchThroughEgress(socketPath: string): void {
  const egress = new undici.Agent({
    connect: { socketPath },
    bodyTimeout: 600_000,
    headersTimeout: 600_000,
  });
  undici.setGlobalDispatcher(egress);
  undici.install();
  globalThis.fetch = gatewayFetch(egress, globalThis.fetch);
  routeNodeHttpThroughEgress(socketPath);
}

/**
 * `fetch` for the calls every turn makes to the gateway (pi's model calls to
 * `POOL_GATEWAY_URL`) on undici's request API: the WHATWG fetch steps around
 * it cost a model call about 1 ms here (docs/performance.md). Only what such a
 * call is: a URL on the gateway, a text or byte body, redirects not asked to be
 * handled otherwise (none is followed: the gateway's relay answers itself).
 * Anything else goes to `fallback`, the installed fetch. Failures look like
 * fetch's: a `TypeError("fetch failed")` with the cause, an abort as the
 * signal's reason.
 */
export function gatewayFetch(dispatcher: undici.Dispatcher, fallback: typeof fetch): typeof fetch {
  const origin = `${new URL(POOL_GATEWAY_URL).origin}/`;
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const href = typeof input === "string" ? input : input instanceof URL ? input.href : "";
    const body = init.body;
    const simple =
      body === undefined || body === null || typeof body === "string" || body instanceof Uint8Array;
    if (!href.startsWith(origin) || !simple || (init.redirect && init.redirect !== "follow"))
      return fallback(input, init);
    const method = (init.method ?? "GET").toUpperCase();
    const headers: string[] = [];
    for (const [name, value] of headerPairs(init.headers)) headers.push(name, value);
    const signal = init.signal ?? undefined;
    let answer: undici.Dispatcher.ResponseData;
    try {
      answer = await undici.request(href, {
        dispatcher,
        method: method as undici.Dispatcher.HttpMethod,
        headers,
        body: body ?? null,
        signal,
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      throw new TypeError("fetch failed", { cause: err });
    }
    const pairs: Array<[string, string]> = [];
    for (const [name, value] of Object.entries(answer.headers)) {
      for (const one of [value ?? []].flat()) pairs.push([name, one]);
    }
    return toResponse(answer.statusCode, "", pairs, answer.body, method);
  }) as typeof fetch;
}

/**
 * The AWS SDK (pi's Bedrock provider) speaks node:http with agents of its own,
 * not fetch: connections of any http.Agent to the pool's gateway name (which
 * never resolves) go to the egress socket too. The sandbox header comes from
 * pi's provider headers, as for fetch.
 */
function routeNodeHttpThroughEgress(socketPath: string): void {
  const host = new URL(POOL_GATEWAY_URL).hostname;
  const original = HttpAgent.prototype.createConnection;
  HttpAgent.prototype.createConnection = function (options, callback) {
    // Returned at once, the socket is used as is (Agent#createSocket).
    if (options?.host === host || options?.hostname === host) return createConnection(socketPath);
    return original.call(this, options, callback);
  };
}

export interface EgressFetchOptions {
  socketPath: string;
  sandboxId: string;
  /** CAs for TLS through the proxy (system CAs plus the installation CA). */
  ca?: string | Buffer;
}

function headerPairs(init: HeadersLike | undefined): Array<[string, string]> {
  if (!init) return [];
  if (typeof (init as { forEach?: unknown }).forEach === "function" && !Array.isArray(init)) {
    const out: Array<[string, string]> = [];
    (init as unknown as Headers).forEach((value, name) => {
      out.push([name, value]);
    });
    return out;
  }
  if (Array.isArray(init)) return init.map(([n, v]) => [String(n), String(v)]);
  return Object.entries(init as Record<string, string>).map(([n, v]) => [n, String(v)]);
}

/** The agent's headers minus anything that speaks to the proxy, plus Host. */
function agentHeaders(init: HeadersLike | undefined, host: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headerPairs(init)) {
    const lower = name.toLowerCase();
    if (IDENTITY_HEADERS.has(lower) || lower === "host" || lower === "connection") continue;
    out[lower] = out[lower] === undefined ? value : `${out[lower]}, ${value}`;
  }
  out.host = host;
  return out;
}

function bodyBytes(body: BodyLike): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  throw new Error("unsupported request body type");
}

const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** The pairs of a Node answer's raw header list. */
function rawPairs(res: IncomingMessage): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < res.rawHeaders.length; i += 2)
    out.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
  return out;
}

/** A WHATWG Response over an answer whose body is a Node stream (drained when it has none). */
function toResponse(
  status: number,
  statusText: string,
  pairs: Iterable<[string, string]>,
  stream: Readable,
  method: string,
): Response {
  const headers = new Headers();
  for (const [name, value] of pairs) {
    try {
      headers.append(name, value);
    } catch {
      // a header value fetch cannot represent: leave it out
    }
  }
  const body =
    NULL_BODY.has(status) || method === "HEAD"
      ? null
      : (Readable.toWeb(stream) as ReadableStream<Uint8Array>);
  if (!body) stream.resume();
  return new Response(body, {
    status: status < 200 || status > 599 ? 502 : status,
    statusText,
    headers,
  });
}

/** `toResponse` for node:http's answers. */
function nodeResponse(res: IncomingMessage, method: string): Response {
  return toResponse(res.statusCode ?? 502, res.statusMessage ?? "", rawPairs(res), res, method);
}

function waitFor(req: ClientRequest, signal: AbortSignal | undefined): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const onAbort = () => req.destroy(signal?.reason ?? new Error("aborted"));
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    req.once("response", (res) => {
      signal?.removeEventListener("abort", onAbort);
      resolve(res);
    });
    req.once("error", (err) => {
      signal?.removeEventListener("abort", onAbort);
      reject(err);
    });
  });
}

/** A CONNECT tunnel through the proxy, or the proxy's refusal as a Response. */
function openTunnel(
  opts: EgressFetchOptions,
  authority: string,
  signal: AbortSignal | undefined,
): Promise<Socket | Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      socketPath: opts.socketPath,
      method: "CONNECT",
      path: authority,
      headers: {
        host: authority,
        "proxy-authorization": `Basic ${Buffer.from(`${opts.sandboxId}:`).toString("base64")}`,
      },
    });
    const onAbort = () => req.destroy(signal?.reason ?? new Error("aborted"));
    if (signal?.aborted) onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => signal?.removeEventListener("abort", onAbort);
    req.once("connect", (res, socket, head) => {
      done();
      if (res.statusCode === 200) {
        if (head.length) socket.unshift(head);
        resolve(socket);
        return;
      }
      // A refusal: its body explains why (which domain to ask for, ...).
      const chunks: Buffer[] = head.length ? [head] : [];
      socket.on("data", (c: Buffer) => chunks.push(c));
      socket.once("error", () => {});
      socket.once("close", () =>
        resolve(
          new Response(Buffer.concat(chunks), {
            status: res.statusCode && res.statusCode >= 200 ? res.statusCode : 502,
            statusText: res.statusMessage ?? "",
            headers: { "content-type": String(res.headers["content-type"] ?? "text/plain") },
          }),
        ),
      );
    });
    req.once("response", (res) => {
      done();
      resolve(nodeResponse(res, "GET"));
    });
    req.once("error", (err) => {
      done();
      reject(err);
    });
    req.end();
  });
}

/**
 * A WHATWG fetch for one pooled sandbox that goes only to the egress proxy:
 * plain HTTP in absolute form with `x-lobu-sandbox`, HTTPS through a CONNECT
 * tunnel authenticated as the sandbox. Redirects are never followed here (the
 * virtual shell follows them hop by hop, each through this function again).
 */
export function createEgressFetch(opts: EgressFetchOptions): typeof fetch {
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    const method = (init.method ?? "GET").toUpperCase();
    const signal = init.signal ?? undefined;
    const body = bodyBytes(init.body);
    const headers = agentHeaders(init.headers, url.host);
    if (body) headers["content-length"] = String(body.length);

    if (url.protocol === "http:") {
      const req = httpRequest({
        socketPath: opts.socketPath,
        method,
        path: url.href,
        headers: { ...headers, "x-lobu-sandbox": opts.sandboxId },
      });
      const response = waitFor(req, signal);
      req.end(body);
      return nodeResponse(await response, method);
    }
    if (url.protocol !== "https:") throw new Error(`unsupported URL scheme ${url.protocol}`);

    const port = Number(url.port || 443);
    const hostname = url.hostname.replace(/^\[|\]$/g, "");
    const tunnel = await openTunnel(opts, `${url.hostname}:${port}`, signal);
    if (tunnel instanceof Response) return tunnel;
    const tls = tlsConnect({
      socket: tunnel,
      servername: /^[\d.]+$|:/.test(hostname) ? undefined : hostname,
      ca: opts.ca,
      ALPNProtocols: ["http/1.1"],
    });
    const req = httpsRequest({
      host: hostname,
      port,
      method,
      path: `${url.pathname}${url.search}`,
      headers,
      // No agent: with createConnection alone, Node uses our tunnel (an agent would dial itself).
      createConnection: () => tls,
    });
    const response = waitFor(req, signal);
    req.end(body);
    const res = await response;
    res.once("close", () => tls.destroy());
    return nodeResponse(res, method);
  }) as typeof fetch;
}
