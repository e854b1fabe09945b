import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { PLACEHOLDER_PREFIX } from "@lobu/core";
import { parseIpLiteral } from "../domain/ip-literal.ts";
import { specialPurpose } from "./addresses.ts";
import type { BoundSet } from "./bound.ts";
import type { ForwardDeps, ForwardTarget } from "./forwarding.ts";
import { authority, forwardableHeaders, parseBasic, setHeader } from "./headers.ts";
import {
  type LiteralRedactor,
  latin1Replace,
  literalRedactor,
  PlaceholderSwapStream,
  type Replace,
  replacePlaceholders,
} from "./rewrite.ts";
import { bodyEncoder, headerEncoder, RequestSwapper, urlEncoder } from "./swap.ts";

/**
 * The request the proxy sends upstream for one sandbox request: bound
 * placeholders swapped into the URL, headers and body (where the binding allows
 * it), hop-by-hop headers dropped, and the redactor its answer will pass through.
 */

export interface OutgoingRequest {
  /** Origin-form path, placeholders swapped. */
  path: string;
  /** Raw header pairs to send. */
  headers: string[];
  /** Null: no body; a Buffer: swapped whole; a stream: streamed (swapped or untouched). */
  body: Buffer | Readable | null;
  /** What was swapped and left alone, for the outcome. */
  swapper: RequestSwapper;
  /** Redacts the answer for every secret the host may have seen; null when there is none. */
  redactor: LiteralRedactor | null;
}

/** Whether secrets may go into this request in cleartext (see PlaintextSwap). */
function cleartextSwapAllowed(target: ForwardTarget, deps: ForwardDeps): boolean {
  return (
    deps.plaintextSwap === "always" ||
    (deps.plaintextSwap === "private-only" &&
      target.addresses.every((a) => {
        const ip = parseIpLiteral(a.address);
        return ip !== null && specialPurpose(ip) !== null;
      }))
  );
}

export async function prepareOutgoing(
  req: IncomingMessage,
  target: ForwardTarget,
  sandboxId: string,
  deps: ForwardDeps,
): Promise<OutgoingRequest> {
  const swapper = new RequestSwapper({
    sandboxId,
    host: target.host,
    placeholders: deps.placeholders,
    secrets: deps.secrets,
    enabled: target.protocol === "https:" || cleartextSwapAllowed(target, deps),
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
  const withBody = await swapBody(req, headers, swapper, bound, deps.limits.maxSwapBodyBytes);
  headers = withBody.headers;

  const redactor = answerRedactor(bound, swapper);
  // Compressed answers would hide an echoed secret from the redactor.
  if (redactor) headers = setHeader(headers, "Accept-Encoding", "identity");
  return { path, headers, body: withBody.body, swapper, redactor };
}

async function swapHeaders(raw: string[], swapper: RequestSwapper): Promise<string[]> {
  const replace = swapper.replacer("header", headerEncoder);
  // Header values arrive as latin1; secrets are UTF-8 text.
  const latin1 = latin1Replace(replace);
  const out = raw.slice();
  for (let i = 1; i < out.length; i += 2) {
    const value = out[i]!;
    // Basic credentials hide the placeholder in base64 (git over HTTPS with a token).
    const basic = out[i - 1]!.toLowerCase() === "authorization" ? parseBasic(value) : null;
    if (basic) {
      const swapped = await replacePlaceholders(basic.decoded, replace);
      if (swapped !== basic.decoded) {
        const encoded = Buffer.from(swapped, "utf8").toString("base64");
        swapper.produced.set(encoded, basic.token);
        out[i] = `Basic ${encoded}`;
      }
    } else if (value.includes(PLACEHOLDER_PREFIX)) {
      out[i] = await replacePlaceholders(value, latin1);
    }
  }
  return out;
}

/**
 * The body to send: a text body of known length (up to `maxSwapBytes`) is read
 * and swapped whole, a chunked text body is swapped as it streams (when a secret
 * may go in a body at all), anything else (binary, compressed, larger) is
 * forwarded untouched.
 */
async function swapBody(
  req: IncomingMessage,
  headers: string[],
  swapper: RequestSwapper,
  bound: BoundSet,
  maxSwapBytes: number,
): Promise<{ body: Buffer | Readable | null; headers: string[] }> {
  const chunked = req.headers["transfer-encoding"] !== undefined;
  const length =
    req.headers["content-length"] !== undefined ? Number(req.headers["content-length"]) : 0;
  if (!chunked && !(length > 0)) return { body: null, headers };
  const enc = bodyEncoder(req.headers["content-type"], req.headers["content-encoding"]);
  let body: Buffer | Readable;
  if (enc && !chunked && length <= maxSwapBytes) {
    body = await replaceInBytes(await readBody(req, length), swapper.replacer("body", enc));
    headers = setHeader(headers, "Content-Length", String(body.length));
  } else if (enc && chunked) {
    body = bound.secrets.some((b) => b.locations.includes("body"))
      ? req.pipe(new PlaceholderSwapStream(swapper.replacer("body", enc)))
      : req;
  } else {
    body = req;
  }
  if (chunked) headers = setHeader(headers, "Transfer-Encoding", "chunked");
  return { body, headers };
}

/** The redactor for the answer: the host's bound secrets plus what this request added. */
function answerRedactor(bound: BoundSet, swapper: RequestSwapper): LiteralRedactor | null {
  const extra: [string, string][] = [
    // A value swapped in but not (yet) in the cached set, e.g. just rotated.
    ...[...swapper.swapped]
      .filter(([, s]) => !bound.values.has(s.value))
      .map(([placeholder, s]): [string, string] => [s.value, placeholder]),
    // What the proxy itself encoded around a value (Basic credentials).
    ...swapper.produced,
  ];
  if (extra.length === 0) return bound.redactor;
  return literalRedactor([...bound.values, ...extra]);
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
  const out = await replacePlaceholders(text, latin1Replace(replace));
  return Buffer.from(out, "latin1");
}
