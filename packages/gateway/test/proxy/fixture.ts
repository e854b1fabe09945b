import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http, { type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import type { ResolvedAddress, Resolver } from "../../src/proxy/addresses.ts";
import type { EgressAuditRecord } from "../../src/proxy/audit.ts";
import { type CertificateAuthority, caBundle, loadOrCreateCa } from "../../src/proxy/ca.ts";
import {
  createEgressServer,
  type EgressPolicy,
  type EgressServer,
  type EgressServerOptions,
} from "../../src/proxy/server.ts";
import { PlaceholderRegistry } from "../../src/secrets/placeholders.ts";
import { SecretStore } from "../../src/secrets/store.ts";
import { createStore } from "../../src/store/index.ts";
import type { Store } from "../../src/store/port.ts";
import { createUpstreamCa, startUpstream, type Upstream, type UpstreamCa } from "./upstream.ts";

export type { Received, Route, Upstream } from "./upstream.ts";

/**
 * A small world for egress tests: real sockets and TLS everywhere. Upstreams are
 * local servers; a fake resolver maps public-looking names to them, and only the
 * `trusting` sandbox's policy lets the guard reach 127.0.0.1 (an operator opt-in).
 */

export interface World {
  dir: string;
  store: Store;
  secrets: SecretStore;
  /** The secrets' master key (a second SecretStore on `store` is another gateway). */
  masterKey: Buffer;
  placeholders: PlaceholderRegistry;
  ca: CertificateAuthority;
  bundlePath: string;
  /** The "public" CA upstream HTTPS servers use (the proxy is told to trust it). */
  upstreamCa: UpstreamCa;
  http: Upstream;
  https: Upstream;
  proxy: EgressServer;
  proxyPort: number;
  audit: EgressAuditRecord[];
  resolverCalls: string[];
  /** Name → answers; a function answers differently per call. */
  dns: Map<string, ResolvedAddress[] | (() => ResolvedAddress[])>;
  policies: Map<string, EgressPolicy>;
  internalCalls: { url: string; sandboxId: string }[];
  startProxy(
    overrides?: Partial<EgressServerOptions>,
  ): Promise<{ server: EgressServer; port: number }>;
  close(): Promise<void>;
}

export const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });

/** Allowed names; the `trusting` sandbox may reach 127.0.0.1 (operator opt-in), `strict` may not. */
export const TRUSTING = "sb_trusting";
export const STRICT = "sb_strict";

export async function createWorld(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), "lobu-egress-"));
  const store = await createStore({ driver: "sqlite", path: join(dir, "lobu.db") });
  const masterKey = randomBytes(32);
  const secrets = new SecretStore(store.kv, masterKey);
  const placeholders = new PlaceholderRegistry(store.kv);
  const ca = await loadOrCreateCa(join(dir, "data"));
  const bundlePath = await caBundle(join(dir, "data"));
  const upstreamCa = await createUpstreamCa(join(dir, "public-ca"));

  const httpUp = await startUpstream();
  const leaf = await upstreamCa.leafFor("api.allowed.test");
  const otherLeaf = await upstreamCa.leafFor("other.allowed.test");
  const httpsUp = await startUpstream({
    tls: {
      ...leaf,
      SNICallback: (name, cb) =>
        cb(null, tls.createSecureContext(name === "other.allowed.test" ? otherLeaf : leaf)),
    },
  });

  const dns = new Map<string, ResolvedAddress[] | (() => ResolvedAddress[])>([
    ["api.allowed.test", [v4("127.0.0.1")]],
    ["other.allowed.test", [v4("127.0.0.1")]],
    ["blocked.allowed.test", [v4("127.0.0.1")]],
    ["evil.test", [v4("127.0.0.1")]],
    ["private.allowed.test", [v4("10.1.2.3")]],
    ["mixed.allowed.test", [v4("127.0.0.1"), v4("192.168.1.10")]],
    ["metadata.allowed.test", [v4("169.254.169.254")]],
  ]);
  const resolverCalls: string[] = [];
  const resolver: Resolver = async (host) => {
    resolverCalls.push(host);
    const answer = dns.get(host);
    if (!answer)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return typeof answer === "function" ? answer() : answer;
  };
  const policies = new Map<string, EgressPolicy>([
    [
      TRUSTING,
      {
        agentId: "helper",
        allow: ["*.allowed.test", "allowed.test"],
        deny: ["blocked.allowed.test"],
        allowPrivateRanges: ["127.0.0.1/32"],
      },
    ],
    [STRICT, { agentId: "strict", allow: ["*"], deny: [], allowPrivateRanges: [] }],
  ]);
  const audit: EgressAuditRecord[] = [];
  const internalCalls: { url: string; sandboxId: string }[] = [];
  const servers: EgressServer[] = [];

  const startProxy = async (overrides: Partial<EgressServerOptions> = {}) => {
    const server = createEgressServer({
      identity: { kind: "sandbox", sandboxId: TRUSTING },
      policyFor: async (id) => policies.get(id) ?? null,
      placeholders,
      secrets,
      ca,
      resolver,
      upstreamCa: upstreamCa.certPem,
      audit: (r) => audit.push(r),
      internal: (req, res, ctx) => {
        internalCalls.push({ url: req.url ?? "", sandboxId: ctx.sandboxId });
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(`internal ${ctx.sandboxId} ${req.url}`);
      },
      ...overrides,
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return { server, port: (server.address() as AddressInfo).port };
  };
  const main = await startProxy();

  return {
    dir,
    store,
    secrets,
    masterKey,
    placeholders,
    ca,
    bundlePath,
    upstreamCa,
    http: httpUp,
    https: httpsUp,
    proxy: main.server,
    proxyPort: main.port,
    audit,
    resolverCalls,
    dns,
    policies,
    internalCalls,
    startProxy,
    async close() {
      for (const s of servers) await s.shutdown();
      for (const up of [httpUp, httpsUp]) await up.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function collect(res: IncomingMessage): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () =>
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      }),
    );
    res.on("error", reject);
  });
}

/** A plain-HTTP proxy request (absolute form), the way HTTP_PROXY clients send it. */
export function viaProxy(
  proxyPort: number,
  url: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    socketPath?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      ...(opts.socketPath
        ? { socketPath: opts.socketPath }
        : { host: "127.0.0.1", port: proxyPort }),
      method: opts.method ?? "GET",
      path: url,
      headers: opts.headers,
      agent: false,
    });
    req.on("response", (res) => collect(res).then(resolve, reject));
    req.on("error", reject);
    req.end(opts.body);
  });
}

/**
 * A WebSocket-style upgrade through the proxy (absolute form): the socket and any
 * bytes that came with a 101, or the refusal's status and body.
 */
export function upgradeViaProxy(
  proxyPort: number,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; socket?: net.Socket; head?: Buffer; body?: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port: proxyPort,
      path: url,
      headers: { connection: "Upgrade", upgrade: "websocket", ...headers },
      agent: false,
    });
    req.on("upgrade", (res, socket, head) =>
      resolve({ status: res.statusCode ?? 0, socket, head }),
    );
    req.on("response", (res) =>
      collect(res).then((r) => resolve({ status: r.status, body: r.body }), reject),
    );
    req.on("error", reject);
    req.end();
  });
}

/** Raw CONNECT: the proxy's answer head, plus the socket when it said 200. */
export function connect(
  proxyPort: number,
  authority: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; head: string; body: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxyPort, "127.0.0.1");
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${extra}\r\n`);
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.subarray(0, end).toString("latin1");
      const status = Number(head.split(" ")[1]);
      const rest = buf.subarray(end + 4);
      if (status === 200) {
        socket.off("data", onData);
        if (rest.length) socket.unshift(rest);
        resolve({ status, head, body: "", socket });
        return;
      }
      socket.off("data", onData);
      const chunks: Buffer[] = [rest];
      socket.on("data", (d: Buffer) => chunks.push(d));
      socket.on("end", () =>
        resolve({ status, head, body: Buffer.concat(chunks).toString("utf8"), socket }),
      );
    };
    socket.on("data", onData);
    socket.on("error", reject);
  });
}

/** HTTPS through a CONNECT tunnel, verifying the server against `ca`. */
export async function httpsViaProxy(
  proxyPort: number,
  host: string,
  port: number,
  opts: {
    ca: string | Buffer;
    path?: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    connectHeaders?: Record<string, string>;
  },
): Promise<Reply & { peerIssuer: string }> {
  const tunnel = await connect(proxyPort, `${host}:${port}`, opts.connectHeaders);
  if (tunnel.status !== 200) throw new Error(`CONNECT refused: ${tunnel.status} ${tunnel.body}`);
  const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ socket: tunnel.socket, servername: host, ca: opts.ca });
    s.once("secureConnect", () => resolve(s));
    s.once("error", reject);
  });
  const peerIssuer = String(secure.getPeerCertificate().issuer?.CN ?? "");
  return new Promise((resolve, reject) => {
    const req = http.request({
      // No agent: with createConnection, the request runs on our tunnelled socket.
      createConnection: () => secure,
      host,
      port,
      method: opts.method ?? "GET",
      path: opts.path ?? "/",
      headers: opts.headers,
    });
    req.on("response", (res) =>
      collect(res).then((r) => {
        secure.destroy();
        resolve({ ...r, peerIssuer });
      }, reject),
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a program to completion, collecting its output. */
export function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? "/usr/bin" },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Run curl (quiet, errors shown, 20 s at most). */
export function curl(args: string[]): Promise<RunResult> {
  return run("/usr/bin/curl", ["--silent", "--show-error", "--max-time", "20", ...args]);
}
