import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import zlib from "node:zlib";
import { PLACEHOLDER_PREFIX } from "@lobu/core";
import { parseIpLiteral } from "../domain/ip-literal.ts";
import type { PlaceholderLookup } from "../secrets/placeholders.ts";
import { type ResolvedAddress, specialPurpose } from "./addresses.ts";
import type { BoundSecrets } from "./bound.ts";
import { type Refusal, refusalParts, statusText, wantsJson } from "./explain.ts";
import { authority, forwardableHeaders, setHeader } from "./headers.ts";
import {
  LiteralRedactor,
  PlaceholderSwapStream,
  type Replace,
  replacePlaceholders,
} from "./rewrite.ts";
import {
  bodyEncoder,
  headerEncoder,
  RequestSwapper,
  type SecretSource,
  urlEncoder,
} from "./swap.ts";

/**
 * One proxied HTTP request: swap bound placeholders, send it to the vetted address
 * (never the name again), stream the answer back, redacting any real secret that
 * was sent in it. Used for absolute-form requests and for requests inside an
 * intercepted CONNECT tunnel.
 */

export interface ForwardTarget {
  protocol: "http:" | "https:";
  /** Canonical host (policy and placeholder bindings are checked against it). */
  host: string;
  port: number;
  /** Request target in origin form (`/path?query`). */
  path: string;
  /** Vetted addresses; the first one is used. */
  addresses: ResolvedAddress[];
}

export interface ForwardLimits {
  upstreamConnectTimeoutMs: number;
  idleTimeoutMs: number;
  maxSwapBodyBytes: number;
}

/**
 * When secrets may travel in cleartext (plain `http://`): `private-only` (default)
 * only to addresses the operator opted into (internal services), `always`, or
 * `never`. Over TLS they always may.
 */
export type PlaintextSwap = "private-only" | "always" | "never";

export interface ForwardDeps {
  placeholders: PlaceholderLookup;
  secrets: SecretSource;
  /** Secrets bound to a host, for redacting every response from it. */
  bound: BoundSecrets;
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
  /** CAs trusted for upstream TLS; undefined = Node's default store. */
  upstreamCa?: string | Buffer | (string | Buffer)[];
  limits: ForwardLimits;
  plaintextSwap: PlaintextSwap;
}

export interface ForwardOutcome {
  decision: "allowed" | "swapped" | "error";
  status: number;
  reason: string;
  secrets: string[];
  unswapped: number;
  /** Why placeholders were left alone (secret names, never values or placeholders). */
  notes: string[];
}

/** Write a refusal/error as a normal HTTP response. */
export function sendRefusal(
  req: IncomingMessage,
  res: ServerResponse,
  r: Refusal,
  extra: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { headers, body } = refusalParts(r, wantsJson(req.headers), extra);
  res.writeHead(r.status, statusText(r), headers);
  res.end(body);
}

function readBody(req: IncomingMessage, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > length) req.destroy(new Error("request body longer than its content-length"));
      else chunks.push(c);
    });
    req.once("end", () => resolve(Buffer.concat(chunks, size)));
    req.once("error", reject);
    req.once("close", () => {
      if (!req.complete)
        reject(new Error("the client closed the connection while sending the body"));
    });
  });
}

/** Swap in a whole byte body (one char per byte, so binary parts survive). */
async function replaceInBytes(buf: Buffer, replace: Replace): Promise<Buffer> {
  const text = buf.toString("latin1");
  if (!text.includes(PLACEHOLDER_PREFIX)) return buf;
  const out = await replacePlaceholders(text, async (p) => {
    const r = await replace(p);
    return r === null ? null : Buffer.from(r, "utf8").toString("latin1");
  });
  return Buffer.from(out, "latin1");
}

async function swapHeaders(raw: string[], swapper: RequestSwapper): Promise<string[]> {
  const replace = swapper.replacer("header", headerEncoder);
  const latin1 = async (p: string) => {
    // Header values arrive as latin1; secrets are UTF-8 text.
    const r = await replace(p);
    return r === null ? null : Buffer.from(r, "utf8").toString("latin1");
  };
  const out = raw.slice();
  for (let i = 1; i < out.length; i += 2) {
    const value = out[i]!;
    // Basic credentials hide the placeholder in base64 (git over HTTPS with a token).
    const basic =
      out[i - 1]!.toLowerCase() === "authorization" &&
      /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(value);
    if (basic) {
      const decoded = Buffer.from(basic[1]!, "base64").toString("utf8");
      const swapped = await replacePlaceholders(decoded, replace);
      if (swapped !== decoded) {
        const encoded = Buffer.from(swapped, "utf8").toString("base64");
        swapper.produced.set(encoded, basic[1]!);
        out[i] = `Basic ${encoded}`;
      }
    } else if (value.includes(PLACEHOLDER_PREFIX)) {
      out[i] = await replacePlaceholders(value, latin1);
    }
  }
  return out;
}

const KNOWN_CODINGS: ReadonlySet<string> = new Set(["gzip", "x-gzip", "deflate", "br"]);

function decoderFor(encoding: string): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | null {
  switch (encoding.trim().toLowerCase()) {
    case "gzip":
    case "x-gzip":
      return zlib.createGunzip();
    case "deflate":
      return zlib.createInflate();
    case "br":
      return zlib.createBrotliDecompress();
    default:
      return null;
  }
}

/**
 * The one compression to undo before redacting an answer: `identity`, a coding
 * decoderFor knows, or null when the body is hidden in a way the proxy cannot
 * undo (an unknown coding, several of them, or a transfer coding other than
 * chunked, which the client would not even see). Every Content-Encoding header
 * counts, not only the first: a second one is how a body would slip past.
 */
function codingOf(upRes: IncomingMessage): string | null {
  const codings: string[] = [];
  for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
    const name = upRes.rawHeaders[i]!.toLowerCase();
    if (name !== "content-encoding" && name !== "transfer-encoding") continue;
    for (const token of upRes.rawHeaders[i + 1]!.split(",")) {
      const t = token.trim().toLowerCase();
      if (t && t !== "identity" && !(name === "transfer-encoding" && t === "chunked")) {
        codings.push(t);
      }
    }
  }
  if (codings.length === 0) return "identity";
  return codings.length === 1 && KNOWN_CODINGS.has(codings[0]!) ? codings[0]! : null;
}

function describeCodings(upRes: IncomingMessage): string {
  const parts: string[] = [];
  for (const name of ["content-encoding", "transfer-encoding"]) {
    const v = upRes.headers[name];
    if (v) parts.push(`${name}: ${Array.isArray(v) ? v.join(", ") : v}`);
  }
  return parts.join("; ");
}

/** Whether an answer to `method` with `status` carries a body (RFC 9110 §6.4.1). */
function hasBody(method: string | undefined, status: number | undefined): boolean {
  if (method === "HEAD") return false;
  return !(status === 204 || status === 304 || (status !== undefined && status < 200));
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Redact header names and values. A name that redaction would turn into an
 * invalid one is dropped: writing it would throw, and it only ever named a secret.
 */
function redactHeaders(raw: string[], redactor: LiteralRedactor): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = redactor.redact(raw[i]!);
    if (TOKEN.test(name)) out.push(name, redactor.redact(raw[i + 1]!));
  }
  return out;
}

class UpstreamTimeout extends Error {}

export async function forward(
  req: IncomingMessage,
  res: ServerResponse,
  target: ForwardTarget,
  sandboxId: string,
  deps: ForwardDeps,
): Promise<ForwardOutcome> {
  const cleartextOk =
    deps.plaintextSwap === "always" ||
    (deps.plaintextSwap === "private-only" &&
      target.addresses.every((a) => {
        const ip = parseIpLiteral(a.address);
        return ip !== null && specialPurpose(ip) !== null;
      }));
  const swapper = new RequestSwapper({
    sandboxId,
    host: target.host,
    placeholders: deps.placeholders,
    secrets: deps.secrets,
    enabled: target.protocol === "https:" || cleartextOk,
  });
  const path = target.path.includes(PLACEHOLDER_PREFIX)
    ? await replacePlaceholders(target.path, swapper.replacer("url", urlEncoder))
    : target.path;
  let headers = forwardableHeaders(req.rawHeaders);
  headers = setHeader(headers, "Host", authority(target.host, target.port, target.protocol));
  headers = await swapHeaders(headers, swapper);

  // Every secret this sandbox may send here: the response is redacted for all of
  // them, not only for those swapped into this request (see bound.ts).
  const chunked = req.headers["transfer-encoding"] !== undefined;
  const bound = await deps.bound.forHost(sandboxId, target.host, { fresh: chunked });

  const length =
    req.headers["content-length"] !== undefined ? Number(req.headers["content-length"]) : 0;
  let body: Buffer | Readable | null = null;
  if (chunked || length > 0) {
    const enc = bodyEncoder(req.headers["content-type"], req.headers["content-encoding"]);
    if (enc && !chunked && length <= deps.limits.maxSwapBodyBytes) {
      body = await replaceInBytes(await readBody(req, length), swapper.replacer("body", enc));
      headers = setHeader(headers, "Content-Length", String(body.length));
    } else if (enc && chunked) {
      body = bound.secrets.some((b) => b.locations.includes("body"))
        ? req.pipe(new PlaceholderSwapStream(swapper.replacer("body", enc)))
        : req;
    } else {
      // Binary, compressed, or larger than we buffer: forwarded untouched.
      body = req;
    }
    if (chunked) headers = setHeader(headers, "Transfer-Encoding", "chunked");
  }

  let redactor = bound.redactor;
  const extra: [string, string][] = [
    // A value swapped in but not (yet) in the cached set, e.g. just rotated.
    ...[...swapper.swapped]
      .filter(([, s]) => !bound.values.has(s.value))
      .map(([placeholder, s]): [string, string] => [s.value, placeholder]),
    // What the proxy itself encoded around a value (Basic credentials).
    ...swapper.produced,
  ];
  if (extra.length > 0) redactor = new LiteralRedactor([...bound.values, ...extra]);
  // Compressed answers would hide an echoed secret from the redactor.
  if (redactor) headers = setHeader(headers, "Accept-Encoding", "identity");

  const isHttps = target.protocol === "https:";
  const addr = target.addresses[0]!;
  const options: https.RequestOptions = {
    host: addr.address,
    family: addr.family,
    port: target.port,
    method: req.method,
    path,
    headers,
    setHost: false,
    agent: isHttps ? deps.httpsAgent : deps.httpAgent,
  };
  if (isHttps) {
    // Verified against the name the sandbox asked for, with the normal trust store.
    if (!parseIpLiteral(target.host)) options.servername = target.host;
    if (deps.upstreamCa) options.ca = deps.upstreamCa;
  }

  const outcome = (
    decision: ForwardOutcome["decision"],
    status: number,
    reason: string,
  ): ForwardOutcome => ({
    decision,
    status,
    reason,
    secrets: swapper.secretNames,
    unswapped: swapper.unswappedCount,
    notes: swapper.notes,
  });

  return new Promise<ForwardOutcome>((resolve) => {
    let settled = false;
    const settle = (o: ForwardOutcome) => {
      if (!settled) {
        settled = true;
        resolve(o);
      }
    };
    const upReq = (isHttps ? https : http).request(options);

    upReq.on("socket", (socket) => {
      if (!socket.connecting) return;
      const timer = setTimeout(
        () => upReq.destroy(new UpstreamTimeout(`connecting to ${addr.address} timed out`)),
        deps.limits.upstreamConnectTimeoutMs,
      );
      socket.once("connect", () => clearTimeout(timer));
      socket.once("close", () => clearTimeout(timer));
    });
    upReq.setTimeout(deps.limits.idleTimeoutMs, () =>
      upReq.destroy(
        new UpstreamTimeout(`no data from ${target.host} for ${deps.limits.idleTimeoutMs} ms`),
      ),
    );

    upReq.on("error", (err) => {
      if (settled) {
        res.destroy();
        return;
      }
      const timeout = err instanceof UpstreamTimeout;
      const status = timeout ? 504 : 502;
      const code = (err as NodeJS.ErrnoException).code;
      const reason = `${target.host} (${addr.address}:${target.port}) failed: ${code ?? err.message}`;
      sendRefusal(
        req,
        res,
        { status, kind: "upstream", host: target.host, reason },
        { Connection: "close" },
      );
      settle(outcome("error", status, reason));
    });

    // The sandbox went away: stop the upstream request too.
    res.on("close", () => {
      if (!res.writableFinished) upReq.destroy();
    });

    upReq.on("response", (upRes) => {
      let rh = forwardableHeaders(upRes.rawHeaders);
      let statusMessage = upRes.statusMessage;
      const stages: NodeJS.ReadWriteStream[] = [];
      if (redactor) {
        // Everything the host can echo into: the reason phrase, header names and values, the body.
        statusMessage = redactor.redact(statusMessage ?? "");
        rh = redactHeaders(rh, redactor);
        const coding = codingOf(upRes);
        if (coding === null) {
          upRes.destroy();
          const reason = `${target.host} answered with content in an encoding (${describeCodings(upRes)}) that cannot be checked for leaked secrets`;
          sendRefusal(req, res, { status: 502, kind: "upstream", host: target.host, reason });
          settle(outcome("error", 502, reason));
          return;
        }
        if (coding !== "identity") {
          rh = setHeader(rh, "Content-Encoding", undefined);
          // A bodiless answer (HEAD, 204, 304) has nothing to decode.
          if (hasBody(req.method, upRes.statusCode)) stages.push(decoderFor(coding)!);
        }
        // Redaction changes the length; the client gets chunked encoding instead.
        rh = setHeader(rh, "Content-Length", undefined);
        stages.push(redactor.stream());
      }
      const status = upRes.statusCode ?? 502;
      res.writeHead(status, statusMessage, rh);
      // A streamed answer (SSE, chunked) gets its headers now rather than with the
      // first chunk; a sized one sends them with its body (one write fewer).
      if (
        upRes.headers["content-length"] === undefined ||
        /event-stream/i.test(upRes.headers["content-type"] ?? "")
      ) {
        res.flushHeaders();
      }
      settle(
        outcome(
          swapper.swapped.size > 0 ? "swapped" : "allowed",
          status,
          `${req.method} ${target.protocol}//${authority(target.host, target.port, target.protocol)} → ${status}`,
        ),
      );
      // Plain pipes (stream.pipeline costs an AbortController per response); any
      // failure along the way cuts the sandbox's response short.
      const fail = () => {
        res.destroy();
        upRes.destroy();
      };
      let src: NodeJS.ReadableStream = upRes;
      upRes.on("error", fail);
      for (const stage of stages) {
        stage.on("error", fail);
        src = src.pipe(stage);
      }
      src.pipe(res);
    });

    if (body === null) upReq.end();
    else if (Buffer.isBuffer(body)) upReq.end(body);
    else {
      body.on("error", (err) => upReq.destroy(err));
      body.pipe(upReq);
    }
  });
}

export function createUpstreamAgents(): { httpAgent: http.Agent; httpsAgent: https.Agent } {
  const opts = {
    keepAlive: true,
    maxSockets: 256,
    maxFreeSockets: 64,
    scheduling: "lifo" as const,
  };
  return { httpAgent: new http.Agent(opts), httpsAgent: new https.Agent(opts) };
}
