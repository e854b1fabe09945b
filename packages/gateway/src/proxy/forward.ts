import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import { answerHead } from "./answer-redaction.ts";
import { wantsJson } from "./explain.ts";
import type { ForwardDeps, ForwardOutcome, ForwardTarget } from "./forwarding.ts";
import { authority } from "./headers.ts";
import { type OutgoingRequest, prepareOutgoing } from "./outgoing-request.ts";
import { upstreamError, writeRefusal } from "./refusals.ts";
import { upstreamTlsOptions } from "./tunnel.ts";

/**
 * One proxied HTTP request: swap bound placeholders, send it to the vetted address
 * (never the name again), stream the answer back, redacting any real secret that
 * was sent in it. Used for absolute-form requests and for requests inside an
 * intercepted CONNECT tunnel.
 */

class UpstreamTimeout extends Error {}

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
    const upReq = sendUpstream(target, out, req.method, deps);
    upReq.on("error", (err) => {
      if (settled) return void res.destroy();
      const status = err instanceof UpstreamTimeout ? 504 : 502;
      const code = (err as NodeJS.ErrnoException).code;
      const reason = `${target.host} (${target.addresses[0]!.address}:${target.port}) failed: ${code ?? err.message}`;
      const r = upstreamError(target.host, reason, status);
      writeRefusal(res, r, wantsJson(req.headers), { Connection: "close" });
      settle("error", status, reason);
    });
    // The sandbox went away: stop the upstream request too.
    res.on("close", () => {
      if (!res.writableFinished) upReq.destroy();
    });
    upReq.on("response", (upRes) => {
      const head = answerHead(upRes, req.method, out.redactor, target.host);
      if (!head.ok) {
        upRes.destroy();
        writeRefusal(res, upstreamError(target.host, head.reason), wantsJson(req.headers));
        return settle("error", 502, head.reason);
      }
      const status = upRes.statusCode ?? 502;
      res.writeHead(status, head.statusMessage, head.headers);
      // A streamed answer (SSE, chunked) gets its headers now rather than with the
      // first chunk; a sized one sends them with its body (one write fewer).
      if (
        upRes.headers["content-length"] === undefined ||
        /event-stream/i.test(upRes.headers["content-type"] ?? "")
      ) {
        res.flushHeaders();
      }
      const to = `${target.protocol}//${authority(target.host, target.port, target.protocol)}`;
      settle(
        out.swapper.swapped.size > 0 ? "swapped" : "allowed",
        status,
        `${req.method} ${to} → ${status}`,
      );
      pipeAnswer(upRes, head.stages, res);
    });
    sendBody(upReq, out.body);
  });
}

/** Open the upstream request to the first vetted address, with its timeouts. */
function sendUpstream(
  target: ForwardTarget,
  out: OutgoingRequest,
  method: string | undefined,
  deps: ForwardDeps,
): http.ClientRequest {
  const isHttps = target.protocol === "https:";
  const addr = target.addresses[0]!;
  const options: https.RequestOptions = {
    host: addr.address,
    family: addr.family,
    port: target.port,
    method,
    path: out.path,
    headers: out.headers,
    setHost: false,
    agent: isHttps ? deps.httpsAgent : deps.httpAgent,
    ...(isHttps ? upstreamTlsOptions(target.host, deps.upstreamCa) : {}),
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
  const idleMs = deps.limits.idleTimeoutMs;
  upReq.setTimeout(idleMs, () =>
    upReq.destroy(new UpstreamTimeout(`no data from ${target.host} for ${idleMs} ms`)),
  );
  return upReq;
}

function sendBody(upReq: http.ClientRequest, body: OutgoingRequest["body"]): void {
  if (body === null) upReq.end();
  else if (Buffer.isBuffer(body)) upReq.end(body);
  else {
    body.on("error", (err) => upReq.destroy(err));
    body.pipe(upReq);
  }
}

/**
 * Stream the answer's body through `stages` to the sandbox. Plain pipes
 * (stream.pipeline costs an AbortController per response); any failure along the
 * way cuts the sandbox's response short.
 */
function pipeAnswer(
  upRes: IncomingMessage,
  stages: readonly NodeJS.ReadWriteStream[],
  res: ServerResponse,
): void {
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
