import type net from "node:net";
import { refusalRecord } from "./audit-records.ts";
import type { EgressContext } from "./context.ts";
import type { Refusal } from "./explain.ts";
import { badRequest, writeRefusal } from "./refusals.ts";

/**
 * Requests the HTTP parser rejects before any handler sees them: a head too
 * large, too slow, or malformed. The sandbox is known only from the socket (a
 * per-sandbox endpoint, or the intercepted tunnel the bytes came through).
 */

export type ClientErrorContext = Pick<
  EgressContext,
  "identity" | "intercepted" | "audit" | "limits"
>;

/** What the proxy answers to a parser error. */
export function parseErrorRefusal(
  err: NodeJS.ErrnoException,
  host: string,
  maxHeaderBytes: number,
): Refusal {
  switch (err.code) {
    case "HPE_HEADER_OVERFLOW":
      return badRequest(host, `the request head is larger than ${maxHeaderBytes} bytes`, 431);
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return badRequest(host, "the request was not received in time", 408);
    default:
      return badRequest(host, `malformed HTTP request (${err.code ?? err.message})`);
  }
}

/** A `clientError` listener for the endpoint's servers (outer and inner). */
export function clientErrorHandler(
  ctx: ClientErrorContext,
): (err: NodeJS.ErrnoException, socket: net.Socket) => void {
  // The parser may report more errors for bytes still arriving; answer once.
  const answered = new WeakSet<net.Socket>();
  return (err, socket) => {
    if (answered.has(socket)) return void socket.destroy();
    answered.add(socket);
    const tunnel = ctx.intercepted.get(socket);
    const sandboxId =
      ctx.identity.kind === "sandbox" ? ctx.identity.sandboxId : (tunnel?.sandboxId ?? null);
    const r = parseErrorRefusal(err, tunnel?.host ?? "", ctx.limits.maxHeaderBytes);
    // A connection the client reset has nobody to answer, and is not recorded.
    if (err.code === "ECONNRESET") return void socket.destroy();
    writeRefusal(socket, r, false);
    ctx.audit(refusalRecord(r, { sandboxId, method: "", port: tunnel?.port ?? 0 }));
  };
}
