import type { IncomingMessage } from "node:http";
import net from "node:net";
import tls from "node:tls";
import { parseIpLiteral } from "../domain/ip-literal.ts";
import type { ResolvedAddress } from "./addresses.ts";
import { forwardableHeaders } from "./headers.ts";

/** CAs trusted for upstream TLS (never the Lobu CA); absent = Node's default store. */
export type UpstreamTrust = NonNullable<tls.ConnectionOptions["ca"]>;

/**
 * TLS options for a connection the proxy originates: the certificate is verified
 * against the name the sandbox asked for (SNI only for names, never for an IP
 * literal), with the normal trust store unless `upstreamCa` replaces it.
 */
export function upstreamTlsOptions(
  host: string,
  upstreamCa: UpstreamTrust | undefined,
): { servername?: string; ca?: UpstreamTrust } {
  return {
    ...(parseIpLiteral(host) ? {} : { servername: host }),
    ...(upstreamCa ? { ca: upstreamCa } : {}),
  };
}

/** Connect to the first vetted address that answers (never to the host name). */
export function connectVetted(
  addresses: readonly ResolvedAddress[],
  port: number,
  timeoutMs: number,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let i = 0;
    let lastError: Error | undefined;
    const next = () => {
      const addr = addresses[i++];
      if (!addr) {
        reject(lastError ?? new Error("no address to connect to"));
        return;
      }
      const socket = net.connect({ host: addr.address, port, family: addr.family });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy(new Error(`connecting to ${addr.address}:${port} timed out`));
      }, timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(socket);
      });
      socket.once("error", (err) => {
        clearTimeout(timer);
        lastError = err;
        next();
      });
    };
    next();
  });
}

/** Pipe two sockets together; either side closing or idling closes both. */
export function splice(
  a: net.Socket,
  b: net.Socket,
  idleTimeoutMs: number,
  onClose?: () => void,
): void {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    a.destroy();
    b.destroy();
    onClose?.();
  };
  // One side may already be gone (the client hung up while upstream was dialled).
  if (a.destroyed || b.destroyed) {
    close();
    return;
  }
  for (const s of [a, b]) {
    s.setTimeout(idleTimeoutMs, close);
    s.on("error", close);
    s.on("close", close);
  }
  a.pipe(b);
  b.pipe(a);
}

/**
 * Relay a protocol upgrade (WebSocket) to the vetted address: the request head is
 * rewritten (hop-by-hop and proxy headers removed), then bytes flow both ways.
 * Placeholders are not swapped here: an upgraded stream cannot be redacted.
 */
export async function relayUpgrade(opts: {
  req: IncomingMessage;
  client: net.Socket;
  head: Buffer;
  protocol: "http:" | "https:";
  host: string;
  port: number;
  path: string;
  hostHeader: string;
  addresses: readonly ResolvedAddress[];
  upstreamCa?: UpstreamTrust;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}): Promise<void> {
  const raw = await connectVetted(opts.addresses, opts.port, opts.connectTimeoutMs);
  let upstream: net.Socket = raw;
  if (opts.protocol === "https:") {
    upstream = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({
        socket: raw,
        ...upstreamTlsOptions(opts.host, opts.upstreamCa),
        host: opts.host,
        ALPNProtocols: ["http/1.1"],
      });
      // A server that accepts TCP but never finishes the handshake must not hold the client.
      s.setTimeout(opts.connectTimeoutMs, () =>
        s.destroy(new Error(`TLS handshake with ${opts.host} timed out`)),
      );
      s.once("secureConnect", () => {
        s.setTimeout(0);
        resolve(s);
      });
      s.once("error", (err) => {
        raw.destroy();
        reject(err);
      });
    });
  }
  const pairs: string[] = [];
  const fw = forwardableHeaders(opts.req.rawHeaders);
  for (let i = 0; i < fw.length; i += 2) {
    if (fw[i]!.toLowerCase() !== "host") pairs.push(`${fw[i]}: ${fw[i + 1]}`);
  }
  const upgrade = opts.req.headers.upgrade ?? "websocket";
  const lines = [
    `${opts.req.method} ${opts.path} HTTP/1.1`,
    `Host: ${opts.hostHeader}`,
    ...pairs,
    "Connection: Upgrade",
    `Upgrade: ${upgrade}`,
  ];
  upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
  if (opts.head.length) upstream.write(opts.head);
  splice(opts.client, upstream, opts.idleTimeoutMs);
}
