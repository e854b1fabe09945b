import { pipeline } from "node:stream";
import { Agent, type Dispatcher, request } from "undici";
import { decoderFor, hasBody } from "../proxy/answer-redaction.ts";
import type { UpstreamRequest } from "./wire/index.ts";

/**
 * The relay's model calls to providers, on undici's request API rather than
 * `fetch`: the relay needs status, headers and the body's bytes, none of the
 * WHATWG machinery around them, which cost ~0.6 ms a call (docs/performance.md).
 * Redirects are not followed (a provider's redirect is the worker's to see).
 */

/** A provider's answer as the relay reads it. */
export interface UpstreamAnswer {
  status: number;
  /** Lower-case names; a repeated header (set-cookie) is a list. */
  headers: Record<string, string | string[]>;
  /** The body, decoded from its content coding. */
  body: AsyncIterable<Buffer>;
  /**
   * `decoded`: its Content-Encoding no longer applies. `opaque`: a coding the
   * relay cannot undo (unknown, or several), so nothing in it can be redacted.
   */
  coding: "identity" | "decoded" | "opaque";
  /** Let go of an answer nobody will read, releasing its connection. */
  discard(): Promise<void>;
}

export type UpstreamCall = (req: UpstreamRequest, signal: AbortSignal) => Promise<UpstreamAnswer>;

/**
 * The default connection pool for model calls: kept-alive connections per
 * origin, the same timeouts `fetch` had (five minutes to the answer's head and
 * between its chunks: a model may think long before it streams).
 */
export function providerAgent(): Agent {
  return new Agent({ headersTimeout: 300_000, bodyTimeout: 300_000 });
}

let shared: Agent | undefined;

/** The pool of relays not given their own (tests): made once, on first use. */
function sharedAgent(): Agent {
  if (!shared) shared = providerAgent();
  return shared;
}

export function upstreamCall(dispatcher: Dispatcher = sharedAgent()): UpstreamCall {
  return async (req, signal) => {
    const answer = await request(req.url, {
      dispatcher,
      method: req.method as Dispatcher.HttpMethod,
      headers: req.headers,
      body: req.body ?? null,
      signal,
    });
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value !== undefined) headers[name] = value;
    }
    const raw = answer.body;
    // The relay asks for identity; a provider that compresses anyway is decoded
    // so usage metering and redaction read text.
    // A bodiless answer (HEAD, 204, 304) has nothing to decode, whatever it is labelled.
    const labelled = hasBody(req.method, answer.statusCode)
      ? headers["content-encoding"]
      : undefined;
    const codings = [labelled ?? []]
      .flat()
      .flatMap((v) => v.split(","))
      .map((c) => c.trim().toLowerCase())
      .filter((c) => c && c !== "identity");
    const decoder = codings.length === 1 ? decoderFor(codings[0]!) : null;
    return {
      status: answer.statusCode,
      headers,
      // A failure on either side ends the decoder's iteration with it: the relay sees it there.
      body: decoder ? pipeline(raw, decoder, () => undefined) : raw,
      coding: codings.length === 0 ? "identity" : decoder ? "decoded" : "opaque",
      discard: () => raw.dump().then(() => undefined),
    };
  };
}

/**
 * Whether a failed call is a connection the far side closed (or reset) before
 * answering anything: what a kept-alive connection closed by the provider's idle
 * timeout just as it is reused looks like. Other failures (refused, timed out,
 * DNS) are not retried.
 */
export function closedUnanswered(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === "UND_ERR_SOCKET" || code === "ECONNRESET";
}
