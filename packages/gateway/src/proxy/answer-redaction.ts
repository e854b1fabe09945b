import zlib from "node:zlib";
import { forwardableHeaders, setHeader } from "./headers.ts";
import type { LiteralRedactor } from "./rewrite.ts";

/**
 * The answer from a host a secret may have reached, on its way back to the
 * sandbox: everything the host can echo into (reason phrase, header names and
 * values, the body) passes through the redactor, and a compressed body is
 * decoded first so nothing hides from it.
 */

/** The answer's head as the sandbox gets it, and the stages its body flows through. */
export type AnswerHead =
  | {
      ok: true;
      statusMessage: string | undefined;
      headers: string[];
      stages: NodeJS.ReadWriteStream[];
      /**
       * Set when the caller asked for a whole answer and one is possible (no
       * decoding needed): redacts the complete body, and `stages` is empty. The
       * caller then sets Content-Length to what it returns.
       */
      whole: ((body: Buffer) => Buffer) | null;
    }
  /** The body is encoded in a way the redactor cannot see through. */
  | { ok: false; reason: string };

/** The head of an upstream answer, as the forwarder's client delivers it. */
export interface UpstreamHead {
  statusCode: number;
  statusMessage: string | undefined;
  /** Name, value, name, value… as received (casing and duplicates kept). */
  rawHeaders: string[];
}

const unchanged = (body: Buffer): Buffer => body;

/**
 * `method`: the request's, to know whether the answer has a body to decode.
 * `wantWhole`: the caller will collect the body and send it in one piece (a
 * small sized answer), so no streaming stage is built when none is needed.
 */
export function answerHead(
  upRes: UpstreamHead,
  method: string | undefined,
  redactor: LiteralRedactor | null,
  host: string,
  wantWhole = false,
): AnswerHead {
  const headers = forwardableHeaders(upRes.rawHeaders);
  if (!redactor) {
    const whole = wantWhole ? unchanged : null;
    return { ok: true, statusMessage: upRes.statusMessage, headers, stages: [], whole };
  }
  const coding = codingOf(upRes);
  if (coding === null) {
    const reason = `${host} answered with content in an encoding (${describeCodings(upRes)}) that cannot be checked for leaked secrets`;
    return { ok: false, reason };
  }
  let rh = redactHeaders(headers, redactor);
  const stages: NodeJS.ReadWriteStream[] = [];
  if (coding !== "identity") {
    rh = setHeader(rh, "Content-Encoding", undefined);
    // A bodiless answer (HEAD, 204, 304) has nothing to decode.
    if (hasBody(method, upRes.statusCode)) stages.push(decoderFor(coding)!);
  }
  // Redaction changes the length: a whole answer gets the redacted one, a streamed
  // one chunked encoding instead.
  rh = setHeader(rh, "Content-Length", undefined);
  const statusMessage = redactor.redact(upRes.statusMessage ?? "");
  if (wantWhole && stages.length === 0) {
    const whole = (body: Buffer) => redactor.redactBytes(body);
    return { ok: true, statusMessage, headers: rh, stages, whole };
  }
  stages.push(redactor.stream());
  return { ok: true, statusMessage, headers: rh, stages, whole: null };
}

const KNOWN_CODINGS: ReadonlySet<string> = new Set(["gzip", "x-gzip", "deflate", "br"]);

export function decoderFor(
  encoding: string,
): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | null {
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
function codingOf(upRes: UpstreamHead): string | null {
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

function describeCodings(upRes: UpstreamHead): string {
  const parts: string[] = [];
  for (const name of ["content-encoding", "transfer-encoding"]) {
    const values: string[] = [];
    for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
      if (upRes.rawHeaders[i]!.toLowerCase() === name) values.push(upRes.rawHeaders[i + 1]!);
    }
    if (values.length) parts.push(`${name}: ${values.join(", ")}`);
  }
  return parts.join("; ");
}

/** Whether an answer to `method` with `status` carries a body (RFC 9110 §6.4.1). */
export function hasBody(method: string | undefined, status: number | undefined): boolean {
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
