import { writeFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { loadOrCreateCa } from "../../src/proxy/ca.ts";

/**
 * The far side of the egress proxy in tests: recording HTTP(S) servers on
 * 127.0.0.1 that stand in for internet hosts, and a stand-in public CA for their
 * certificates. Shared by the unit-level proxy tests and the attack suites.
 */

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  /** The Host header as received. */
  host: string;
  tls: boolean;
}

/** A handler tried before the default echo; true when it answered. */
export type Route = (
  req: IncomingMessage,
  res: ServerResponse,
  body: string,
) => boolean | Promise<boolean>;

export interface Upstream {
  port: number;
  received: Received[];
  /** Handlers tried in order before the default JSON echo of the request. */
  routes: Route[];
  server: http.Server | https.Server;
  /** Everything received so far, as one string (for "never saw X" assertions). */
  seen(): string;
  close(): Promise<void>;
}

function readAll(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/**
 * A recording server. By default it answers with a JSON echo of the request
 * (`{ method, url, headers, body }`), so a leak on the way back would show too.
 * With `tls`, it serves HTTPS with those options (certificate, SNI callback).
 */
export async function startUpstream(opts: { tls?: https.ServerOptions } = {}): Promise<Upstream> {
  const isTls = opts.tls !== undefined;
  const server = opts.tls ? https.createServer(opts.tls) : http.createServer();
  const up: Upstream = {
    port: 0,
    received: [],
    routes: [],
    server,
    seen: () => JSON.stringify(up.received),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  server.on("request", async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readAll(req);
    up.received.push({
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      body,
      host: req.headers.host ?? "",
      tls: isTls,
    });
    for (const route of up.routes) if (await route(req, res, body)) return;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  up.port = (server.address() as AddressInfo).port;
  return up;
}

export interface UpstreamCa {
  /** The CA certificate as a PEM file (for LOBU_TEST_UPSTREAM_CA, curl --cacert). */
  caPath: string;
  certPem: string;
  /** A server certificate for `host`, as `https.createServer` options. */
  leafFor(host: string): Promise<{ cert: string; key: string }>;
}

/**
 * A stand-in for a public CA, kept under `dir`: upstream HTTPS servers present
 * leaves it signed, and the proxy is told to trust it for upstream TLS (the
 * `upstreamCa` option, or LOBU_TEST_UPSTREAM_CA in test mode). Sandboxes never
 * trust it.
 */
export async function createUpstreamCa(dir: string): Promise<UpstreamCa> {
  const ca = await loadOrCreateCa(dir);
  const caPath = join(dir, "upstream-ca.pem");
  writeFileSync(caPath, ca.certPem);
  return {
    caPath,
    certPem: ca.certPem,
    async leafFor(host) {
      const leaf = await ca.leafFor(host);
      return { cert: leaf.certPem, key: leaf.keyPem };
    },
  };
}
