import { type IncomingMessage, ServerResponse } from "node:http";
import type net from "node:net";
import { type RecordAudit, refusalRecord } from "./audit-records.ts";
import { type Refusal, rawResponse, refusalParts, statusText, wantsJson } from "./explain.ts";

/**
 * Every refusal the egress proxy sends goes through here: the status and reason
 * phrase, the X-Lobu-Egress / X-Lobu-Egress-Reason headers and the explaining
 * body (explain.ts), on a parsed request's response or, for CONNECT, upgrades
 * and parse errors, on the raw socket. `refuse` also writes the `denied` audit
 * record (which is logged); `writeRefusal` alone is for answers whose record is
 * written elsewhere (an upstream failure is the forwarder's outcome, a missing
 * internal API follows its `internal` record).
 */

/** A check that did not pass, and the refusal that says why. */
export interface Refused {
  ok: false;
  refusal: Refusal;
}

export function refused(refusal: Refusal): Refused {
  return { ok: false, refusal };
}

/** A malformed or unsupported request (400 unless `status` says otherwise). */
export function badRequest(host: string, reason: string, status = 400): Refusal {
  return { status, kind: "bad_request", host, reason };
}

/** Something between the proxy and the host failed (502 unless `status` says otherwise). */
export function upstreamError(host: string, reason: string, status = 502): Refusal {
  return { status, kind: "upstream", host, reason };
}

/** An allowed host the proxy could not reach; `detail` is the error's code or message. */
export function unreachable(host: string, port: number, detail: string, agentId: string): Refusal {
  return { ...upstreamError(host, `${host}:${port} could not be reached: ${detail}`), agentId };
}

/** 407 asks the client for the sandbox's name (pooled sockets). */
export function proxyAuthenticate(r: Refusal): Record<string, string> {
  return r.status === 407 ? { "Proxy-Authenticate": 'Basic realm="lobu"' } : {};
}

/**
 * Write `r` to the client, JSON when `json`. A response whose head is already
 * out, or a socket that can no longer be written, is cut instead.
 */
export function writeRefusal(
  to: ServerResponse | net.Socket,
  r: Refusal,
  json: boolean,
  extraHeaders: Record<string, string> = {},
): void {
  const extra = { ...proxyAuthenticate(r), ...extraHeaders };
  if (to instanceof ServerResponse) {
    if (to.headersSent) {
      to.destroy();
      return;
    }
    const { headers, body } = refusalParts(r, json, extra);
    to.writeHead(r.status, statusText(r), headers);
    to.end(body);
  } else if (to.writable) {
    to.end(rawResponse(r, json, extra));
  } else {
    to.destroy();
  }
}

/** Where a refused request was going, for its audit record (null: sandbox not identified). */
export interface RefusalScope {
  sandboxId: string | null;
  port: number;
}

/** Refuse `req`, answering as its client asked (JSON or text), and audit the refusal. */
export function refuse(
  audit: RecordAudit,
  req: IncomingMessage,
  to: ServerResponse | net.Socket,
  r: Refusal,
  scope: RefusalScope,
): void {
  writeRefusal(to, r, wantsJson(req.headers));
  const raw = !(to instanceof ServerResponse);
  audit(refusalRecord(r, { ...scope, method: req.method ?? (raw ? "CONNECT" : "") }));
}
