import type { IncomingMessage, ServerResponse } from "node:http";
import type { Writable } from "node:stream";
import type { Dispatcher } from "undici";
import { answerHead, hasBody, type UpstreamHead } from "./answer-redaction.ts";
import { wantsJson } from "./explain.ts";
import type { ForwardDeps, ForwardOutcome, ForwardTarget } from "./forwarding.ts";
import { authority, setHeader } from "./headers.ts";
import { type OutgoingRequest, prepareOutgoing } from "./outgoing-request.ts";
import { upstreamError, writeRefusal } from "./refusals.ts";

/**
 * One proxied HTTP request: swap bound placeholders, send it to the vetted address
 * (never the name again), stream the answer back, redacting any real secret that
 * was sent in it. Used for absolute-form requests and for requests inside an
 * intercepted CONNECT tunnel.
 */

class UpstreamTimeout extends Error {}

/** What the request to undici must not carry: it frames the body itself, and Node's server answered any 100-continue. */
const UNSENDABLE = new Set(["transfer-encoding", "expect"]);

export async function forward(
  req: IncomingMessage,
  res: ServerResponse,
  target: ForwardTarget,
  sandboxId: string,
  deps: ForwardDeps,
): Promise<ForwardOutcome> {
  const out = await prepareOutgoing(req, target, sandboxId, deps);
  return new Promise<ForwardOutcome>((resolve) => {
    let settled = false;
    const settle = (decision: ForwardOutcome["decision"], status: number, reason: string) => {
      if (settled) return;
      settled = true;
      resolve({
        decision,
        status,
        reason,
        secrets: out.swapper.secretNames,
        unswapped: out.swapper.unswappedCount,
        notes: out.swapper.notes,
      });
    };
    const failed = (err: Error) => {
      if (settled) return void res.destroy();
      const status = err instanceof UpstreamTimeout || isTimeout(err) ? 504 : 502;
      const code = (err as NodeJS.ErrnoException).code;
      const reason = `${target.host} (${target.addresses[0]!.address}:${target.port}) failed: ${code ?? err.message}`;
      const r = upstreamError(target.host, reason, status);
      writeRefusal(res, r, wantsJson(req.headers), { Connection: "close" });
      settle("error", status, reason);
    };
    const answered = (head: UpstreamHead): BodySink | null => {
      const whole = wholeAnswer(req.method, head);
      const answer = answerHead(head, req.method, out.redactor, target.host, whole);
      if (!answer.ok) {
        writeRefusal(res, upstreamError(target.host, answer.reason), wantsJson(req.headers));
        settle("error", 502, answer.reason);
        return null;
      }
      const status = head.statusCode;
      const to = `${target.protocol}//${authority(target.host, target.port, target.protocol)}`;
      settle(
        out.swapper.swapped.size > 0 ? "swapped" : "allowed",
        status,
        `${req.method} ${to} → ${status}`,
      );
      if (answer.whole) {
        return new WholeAnswer(res, status, answer.statusMessage, answer.headers, answer.whole);
      }
      res.writeHead(status, answer.statusMessage, answer.headers);
      // A streamed answer (SSE, chunked) gets its headers now rather than with the
      // first chunk; a sized one sends them with its body (one write fewer).
      if (
        headerValue(head.rawHeaders, "content-length") === undefined ||
        /event-stream/i.test(headerValue(head.rawHeaders, "content-type") ?? "")
      ) {
        res.flushHeaders();
      }
      return answerSink(answer.stages, res);
    };
    sendUpstream(target, out, req, res, deps, { answered, failed });
  });
}

function isTimeout(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "UND_ERR_CONNECT_TIMEOUT" || code === "UND_ERR_HEADERS_TIMEOUT";
}

/** Answers up to this size with a Content-Length are collected and sent in one write. */
const WHOLE_ANSWER_BYTES = 64 * 1024;

/**
 * Whether to send this answer whole: it has a body of a known, small length and
 * is not an event stream. The sandbox then gets head and body in one write
 * (one syscall, one TLS record) instead of a head, chunks and a chunked end.
 */
function wholeAnswer(method: string | undefined, head: UpstreamHead): boolean {
  if (!hasBody(method, head.statusCode)) return false;
  const length = headerValue(head.rawHeaders, "content-length");
  if (length === undefined || !/^\d{1,6}$/.test(length) || Number(length) > WHOLE_ANSWER_BYTES) {
    return false;
  }
  return !/event-stream/i.test(headerValue(head.rawHeaders, "content-type") ?? "");
}

/** A small sized answer: its body collected, redacted whole, and sent with its head at the end. */
class WholeAnswer implements BodySink {
  readonly #chunks: Buffer[] = [];
  #size = 0;
  readonly res: ServerResponse;
  readonly status: number;
  readonly statusMessage: string | undefined;
  readonly headers: string[];
  readonly redact: (body: Buffer) => Buffer;

  constructor(
    res: ServerResponse,
    status: number,
    statusMessage: string | undefined,
    headers: string[],
    redact: (body: Buffer) => Buffer,
  ) {
    this.res = res;
    this.status = status;
    this.statusMessage = statusMessage;
    this.headers = headers;
    this.redact = redact;
  }

  write(chunk: Buffer): boolean {
    this.#size += chunk.length;
    // Longer than it may be (undici refuses a wrong length too): cut the sandbox's
    // response, which aborts the upstream request.
    if (this.#size > WHOLE_ANSWER_BYTES) this.res.destroy();
    else this.#chunks.push(chunk);
    return true;
  }

  end(): void {
    const body = this.redact(Buffer.concat(this.#chunks, this.#size));
    const headers = setHeader(this.headers, "Content-Length", String(body.length));
    this.res.writeHead(this.status, this.statusMessage, headers);
    this.res.end(body);
  }

  on(): void {}

  destroy(): void {
    this.res.destroy();
  }
}

function headerValue(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}

/** Where an answer's body goes: the sandbox's response (through stages) or a WholeAnswer. */
interface BodySink {
  write(chunk: Buffer): boolean;
  end(): unknown;
  destroy(): unknown;
  on(event: "drain" | "error", fn: () => void): unknown;
}

interface AnswerCallbacks {
  /** The answer's head arrived: where its body goes, or null to drop it (refused). */
  answered(head: UpstreamHead): BodySink | null;
  failed(err: Error): void;
}

/**
 * Send the request to the first vetted address and stream the answer into what
 * `answered` returns, with backpressure: the upstream read pauses while the
 * sandbox is not reading. No data from upstream for the idle timeout cuts it.
 */
function sendUpstream(
  target: ForwardTarget,
  out: OutgoingRequest,
  req: IncomingMessage,
  res: ServerResponse,
  deps: ForwardDeps,
  cb: AnswerCallbacks,
): void {
  const addr = target.addresses[0]!;
  const headers: string[] = [];
  for (let i = 0; i < out.headers.length; i += 2) {
    if (!UNSENDABLE.has(out.headers[i]!.toLowerCase()))
      headers.push(out.headers[i]!, out.headers[i + 1]!);
  }
  const idleMs = deps.limits.idleTimeoutMs;
  let sink: BodySink | null = null;
  let controller: Dispatcher.DispatchController | null = null;
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  /** The answer was refused (answerHead): what undici reports after the abort is ours. */
  let dropped = false;
  const armIdle = () => {
    if (timer) timer.refresh();
    else {
      timer = setTimeout(
        () =>
          controller?.abort(new UpstreamTimeout(`no data from ${target.host} for ${idleMs} ms`)),
        idleMs,
      );
    }
  };
  const finish = () => {
    done = true;
    clearTimeout(timer);
  };
  // The sandbox went away: stop the upstream request too.
  res.on("close", () => {
    if (!done && !res.writableFinished)
      controller?.abort(new Error("the sandbox closed the connection"));
  });
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart(c) {
      controller = c;
      armIdle();
    },
    onResponseStart(c, statusCode, _headers, statusMessage) {
      // 1xx informational answers are not passed on (Node's server sent its own 100).
      if (statusCode < 200) return;
      armIdle();
      const rawHeaders = rawPairs(c.rawHeaders);
      sink = cb.answered({ statusCode, statusMessage: statusMessage ?? "", rawHeaders });
      if (!sink) {
        finish();
        dropped = true;
        return c.abort(new Error("answer refused"));
      }
      sink.on("drain", () => c.resume());
      sink.on("error", () => c.abort(new Error("the answer could not be delivered")));
    },
    onResponseData(c, chunk) {
      armIdle();
      if (sink && !sink.write(chunk)) c.pause();
    },
    onResponseEnd() {
      finish();
      sink?.end();
    },
    onBodySent() {
      armIdle();
    },
    onResponseError(_c, err) {
      finish();
      if (dropped) return;
      if (sink) {
        // Cut the sandbox's answer short (a stage destroyed alone would leave it open).
        res.destroy();
        if (sink !== res) sink.destroy();
      } else cb.failed(err);
    },
  };
  let pool: Dispatcher;
  try {
    pool = deps.pools.poolFor(target.protocol, target.host, addr, target.port);
  } catch (err) {
    cb.failed(err as Error);
    return;
  }
  if (out.body !== null && !Buffer.isBuffer(out.body)) {
    out.body.on("error", (err) => controller?.abort(err));
  }
  pool.dispatch(
    {
      method: (req.method ?? "GET") as Dispatcher.HttpMethod,
      path: out.path,
      headers,
      body: out.body,
      // The forwarder's own idle timer covers headers and body.
      headersTimeout: 0,
      bodyTimeout: 0,
    },
    handler,
  );
}

/** undici's raw header list as latin1 string pairs (what Node's rawHeaders would be). */
function rawPairs(raw: Dispatcher.DispatchController["rawHeaders"]): string[] {
  const out: string[] = [];
  if (Array.isArray(raw)) {
    for (const v of raw) out.push(typeof v === "string" ? v : v.toString("latin1"));
  } else if (raw) {
    for (const [k, v] of Object.entries(raw)) {
      for (const one of Array.isArray(v) ? v : [v]) out.push(k, String(one));
    }
  }
  return out;
}

/**
 * Where the answer's body is written: through `stages` (decoding, redaction)
 * to the sandbox. Any failure along the way cuts the sandbox's response short.
 */
function answerSink(stages: readonly NodeJS.ReadWriteStream[], res: ServerResponse): Writable {
  if (stages.length === 0) return res;
  const fail = () => res.destroy();
  let src = stages[0]!;
  src.on("error", fail);
  for (const stage of stages.slice(1)) {
    stage.on("error", fail);
    src = src.pipe(stage);
  }
  src.pipe(res);
  return stages[0] as unknown as Writable;
}
