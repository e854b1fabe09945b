import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type net from "node:net";
import tls from "node:tls";
import { type Logger, PLACEHOLDER_PATTERN, redactSecrets } from "@lobu/core";
import { decide, firstMatch, matchesPattern, normalizeHost } from "../domain/host-patterns.ts";
import { parseIpLiteral } from "../domain/ip-literal.ts";
import type { EgressIdentity } from "../sandbox/driver.ts";
import { type PlaceholderLookup, swappableByProxy } from "../secrets/placeholders.ts";
import { checkAddress, type ResolvedAddress, type Resolver, vetHost } from "./addresses.ts";
import type { AuditSink, EgressAuditRecord } from "./audit.ts";
import { BoundSecrets } from "./bound.ts";
import type { CertificateAuthority } from "./ca.ts";
import { type Refusal, rawResponse, wantsJson } from "./explain.ts";
import {
  createUpstreamAgents,
  type ForwardDeps,
  type ForwardLimits,
  type ForwardOutcome,
  forward,
  type PlaintextSwap,
  sendRefusal,
} from "./forward.ts";
import { authority } from "./headers.ts";
import type { SecretSource } from "./swap.ts";
import { connectVetted, relayUpgrade, splice } from "./tunnel.ts";

/**
 * The egress endpoint a sandbox reaches through its Unix socket. It is an HTTP
 * forward proxy (absolute-form requests and CONNECT) that enforces the agent's
 * domain policy and the address guard, swaps bound placeholders for real secrets,
 * and hands `/__lobu/*` to the gateway's internal API.
 */

export interface EgressPolicy {
  /** Patterns an operator allowed (lobu.toml, the admin API, skills, secret bindings, providers). */
  allow: string[];
  deny: string[];
  /** Private ranges the operator opted into; they apply only to hosts `allow` matches. */
  allowPrivateRanges: string[];
  /**
   * Patterns a person allowed for their own agent (settings page, capability
   * grants). They open names, never the operator's private ranges: otherwise a
   * user could reach any internal host that happens to be in an opted-in range.
   */
  userAllow?: string[];
  agentId: string;
}

/** Every pattern that allows a host, operator's and user's. */
function allowList(policy: EgressPolicy): string[] {
  return policy.userAllow?.length ? [...policy.allow, ...policy.userAllow] : policy.allow;
}

/** The private ranges that apply to a canonical host: only for operator-allowed hosts. */
function privateRangesFor(policy: EgressPolicy, host: string): string[] {
  return policy.allowPrivateRanges.length > 0 && firstMatch(host, policy.allow) !== undefined
    ? policy.allowPrivateRanges
    : [];
}

export interface EgressLimits extends ForwardLimits {
  /** Largest request head (request line + headers); larger → 431. */
  maxHeaderBytes: number;
  /** Time for a client to send a complete request. */
  requestTimeoutMs: number;
  /** Time for a client to send the request head. */
  headersTimeoutMs: number;
  /** Open CONNECT tunnels per sandbox; more → 429. */
  maxTunnelsPerSandbox: number;
}

export const DEFAULT_EGRESS_LIMITS: EgressLimits = {
  maxHeaderBytes: 32 * 1024,
  requestTimeoutMs: 300_000,
  headersTimeoutMs: 30_000,
  upstreamConnectTimeoutMs: 10_000,
  // LLM calls can think for minutes before the first byte.
  idleTimeoutMs: 600_000,
  maxTunnelsPerSandbox: 64,
  maxSwapBodyBytes: 8 * 1024 * 1024,
};

export interface InternalContext {
  sandboxId: string;
  agentId: string;
}

export type InternalHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  ctx: InternalContext,
) => void | Promise<void>;

export interface EgressServerOptions {
  identity: EgressIdentity;
  /**
   * For pool identities: whether `sandboxId` is placed on this pool. A pool
   * process may only speak for its own sandboxes, so a compromised pool cannot
   * borrow another pool's tenants.
   */
  poolMember?(poolId: string, sandboxId: string): boolean;
  /** The network policy of a sandbox; null = unknown sandbox (refused). */
  policyFor(sandboxId: string): Promise<EgressPolicy | null>;
  placeholders: PlaceholderLookup;
  secrets: SecretSource;
  /** The installation CA (loadOrCreateCa), for hosts where placeholders are swapped over TLS. */
  ca: CertificateAuthority;
  /** Handler for `/__lobu/*` (LLM relay, MCP proxy). 404 when absent. */
  internal?: InternalHandler;
  audit?: AuditSink;
  /** DNS resolver (tests map fake names to local servers). Default: the system's. */
  resolver?: Resolver;
  /** CAs trusted for upstream TLS. Default: Node's normal store. Never the Lobu CA. */
  upstreamCa?: string | Buffer | (string | Buffer)[];
  limits?: Partial<EgressLimits>;
  /**
   * Whether placeholders are swapped into plain-HTTP requests: `private-only`
   * (default: only to operator-allowed private addresses), `always`, `never`.
   */
  plaintextSwap?: PlaintextSwap;
  logger?: Logger;
}

export interface EgressServer extends http.Server {
  /** Stop listening and cut every connection and tunnel now. */
  shutdown(): Promise<void>;
}

interface TunnelContext {
  sandboxId: string;
  host: string;
  port: number;
  addresses: ResolvedAddress[];
}

type Authorized = { ok: true; policy: EgressPolicy; host: string; addresses: ResolvedAddress[] };
type Identified = { ok: true; sandboxId: string } | { ok: false; refusal: Refusal };

const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

/** Audit text never carries a placeholder or a known secret, wherever it came from. */
function scrub(text: string): string {
  return redactSecrets(text.replace(PLACEHOLDER_PATTERN, "[placeholder]"));
}

function parseAuthority(target: string): { host: string; port: number } | null {
  const m = /^(\[[^\]]+\]|[^:/?#\s]+):(\d{1,5})$/.exec(target);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1]!, port };
}

function basicUser(header: string | undefined): string | undefined {
  const m = header && /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? decoded : decoded.slice(0, colon);
}

export function createEgressServer(opts: EgressServerOptions): EgressServer {
  const limits: EgressLimits = { ...DEFAULT_EGRESS_LIMITS, ...opts.limits };
  const agents = createUpstreamAgents();
  const deps: ForwardDeps = {
    placeholders: opts.placeholders,
    secrets: opts.secrets,
    bound: new BoundSecrets({ placeholders: opts.placeholders, secrets: opts.secrets }),
    ...agents,
    ...(opts.upstreamCa ? { upstreamCa: opts.upstreamCa } : {}),
    limits,
    plaintextSwap: opts.plaintextSwap ?? "private-only",
  };
  const tunnelsBySandbox = new Map<string, number>();
  const tunnelContexts = new WeakMap<net.Socket, TunnelContext>();
  const openSockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    openSockets.add(s);
    s.once("close", () => openSockets.delete(s));
  };

  const serverOptions: http.ServerOptions = {
    maxHeaderSize: limits.maxHeaderBytes,
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: 30_000,
    noDelay: true,
  };
  const server = http.createServer(serverOptions) as EgressServer;
  // Parses the requests inside intercepted CONNECT tunnels; never listens itself.
  const innerServer = http.createServer(serverOptions);

  const audit = (r: Omit<EgressAuditRecord, "at">) => {
    const record: EgressAuditRecord = {
      at: Date.now(),
      ...r,
      host: scrub(r.host),
      reason: scrub(r.reason),
      ...(r.notes ? { notes: r.notes.map(scrub) } : {}),
    };
    opts.logger?.debug({ egress: record }, `egress ${record.decision}`);
    if (!opts.audit) return;
    try {
      opts.audit(record);
    } catch (err) {
      opts.logger?.warn({ err }, "egress audit sink failed");
    }
  };

  const auditOutcome = (
    base: { sandboxId: string; agentId: string; method: string; host: string; port: number },
    o: ForwardOutcome,
  ) =>
    audit({
      ...base,
      decision: o.decision,
      reason: o.reason,
      status: o.status,
      ...(o.secrets.length ? { secrets: o.secrets } : {}),
      ...(o.unswapped ? { unswapped: o.unswapped, notes: o.notes } : {}),
    });

  function identify(headers: http.IncomingHttpHeaders, connect: boolean): Identified {
    if (opts.identity.kind === "sandbox") return { ok: true, sandboxId: opts.identity.sandboxId };
    const header = headers["x-lobu-sandbox"];
    const named =
      (typeof header === "string" ? header : undefined) ??
      basicUser(headers["proxy-authorization"]);
    if (named && SANDBOX_ID.test(named)) {
      if (opts.poolMember && !opts.poolMember(opts.identity.poolId, named)) {
        return {
          ok: false,
          refusal: {
            status: 403,
            kind: "identity",
            host: "",
            reason: `sandbox ${named} is not placed on pool ${opts.identity.poolId}`,
          },
        };
      }
      return { ok: true, sandboxId: named };
    }
    return {
      ok: false,
      refusal: {
        status: 407,
        kind: "identity",
        host: "",
        reason: `this egress socket is shared by pool ${opts.identity.poolId}; name the sandbox with ${
          connect ? "Proxy-Authorization: Basic base64(<sandboxId>:)" : "the x-lobu-sandbox header"
        }`,
      },
    };
  }

  async function policyOf(sandboxId: string): Promise<EgressPolicy | Refusal> {
    let policy: EgressPolicy | null;
    try {
      policy = await opts.policyFor(sandboxId);
    } catch (err) {
      opts.logger?.error({ err, sandboxId }, "egress policy lookup failed");
      return {
        status: 502,
        kind: "upstream",
        host: "",
        reason: "the gateway could not load this sandbox's network policy",
      };
    }
    return (
      policy ?? { status: 403, kind: "identity", host: "", reason: `unknown sandbox ${sandboxId}` }
    );
  }

  /** Domain policy, then the address guard (one resolution; the answer is what we connect to). */
  async function authorize(sandboxId: string, rawHost: string): Promise<Authorized | Refusal> {
    const policy = await policyOf(sandboxId);
    if ("status" in policy) return { ...policy, host: rawHost };
    const vetOpts = {
      allowPrivateRanges: policy.allowPrivateRanges,
      ...(opts.resolver ? { resolver: opts.resolver } : {}),
    };
    // An address (or localhost) the guard refuses anyway: say that, not "ask to allow it".
    const canonical = normalizeHost(rawHost);
    if (
      canonical &&
      (parseIpLiteral(canonical) || canonical === "localhost" || canonical.endsWith(".localhost"))
    ) {
      const early = await vetHost(canonical, vetOpts);
      if (!early.ok) {
        return {
          status: early.status,
          kind: "private_address",
          host: canonical,
          reason: early.reason,
          agentId: policy.agentId,
        };
      }
    }
    const d = decide({ host: rawHost, allow: allowList(policy), deny: policy.deny });
    if (!d.allowed) {
      return {
        status: d.host ? 403 : 400,
        kind: d.host === null ? "bad_request" : d.rule ? "denied_rule" : "not_allowed",
        host: d.host ?? rawHost,
        reason: d.reason,
        agentId: policy.agentId,
      };
    }
    const host = d.host!;
    const ranges = privateRangesFor(policy, host);
    const vet = await vetHost(host, { ...vetOpts, allowPrivateRanges: ranges });
    if (!vet.ok) {
      let reason = vet.reason;
      if (vet.status === 403 && ranges !== policy.allowPrivateRanges) {
        // Would the operator's ranges have let it through? Then say why they did not apply.
        const withRanges = await vetHost(host, vetOpts);
        if (withRanges.ok) {
          reason += `; allow_private_ranges applies only to hosts allowed in lobu.toml, and ${host} is allowed only from the settings page`;
        }
      }
      return {
        status: vet.status,
        kind: vet.status === 403 ? "private_address" : "upstream",
        host,
        reason,
        agentId: policy.agentId,
      };
    }
    return { ok: true, policy, host, addresses: vet.addresses };
  }

  const auditRefusal = (r: Refusal, sandboxId: string | null, method: string, port: number) =>
    audit({
      sandboxId,
      ...(r.agentId ? { agentId: r.agentId } : {}),
      method,
      host: r.host,
      port,
      decision: "denied",
      reason: r.reason,
      status: r.status,
    });

  /** 407 asks the client for the sandbox's name (pooled sockets). */
  const authenticate = (r: Refusal): Record<string, string> =>
    r.status === 407 ? { "Proxy-Authenticate": 'Basic realm="lobu"' } : {};

  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    r: Refusal,
    sandboxId: string | null,
    port: number,
  ) => {
    sendRefusal(req, res, r, authenticate(r));
    auditRefusal(r, sandboxId, req.method ?? "", port);
  };

  async function handleInternal(req: IncomingMessage, res: ServerResponse, sandboxId: string) {
    const policy = await policyOf(sandboxId);
    if ("status" in policy) return refuse(req, res, policy, sandboxId, 0);
    audit({
      sandboxId,
      agentId: policy.agentId,
      method: req.method ?? "",
      host: "__lobu",
      port: 0,
      decision: "internal",
      reason: (req.url ?? "").split("?")[0]!,
    });
    if (!opts.internal) {
      return sendRefusal(req, res, {
        status: 404,
        kind: "bad_request",
        host: "__lobu",
        reason: "no internal API is attached to this egress endpoint",
      });
    }
    await opts.internal(req, res, { sandboxId, agentId: policy.agentId });
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse) {
    const id = identify(req.headers, false);
    if (!id.ok) return refuse(req, res, id.refusal, null, 0);
    const sandboxId = id.sandboxId;
    const target = req.url ?? "";

    if (target.startsWith("/")) {
      if (target.startsWith("/__lobu/")) return handleInternal(req, res, sandboxId);
      return refuse(
        req,
        res,
        {
          status: 400,
          kind: "bad_request",
          host: "",
          reason: `"${target.slice(0, 100)}" is not a proxy request. This is the Lobu egress proxy: send absolute URLs through it (HTTP_PROXY/HTTPS_PROXY are set), or use CONNECT for TLS; only /__lobu/* is served directly`,
        },
        sandboxId,
        0,
      );
    }

    let url: URL;
    try {
      url = new URL(target);
    } catch {
      return refuse(
        req,
        res,
        {
          status: 400,
          kind: "bad_request",
          host: "",
          reason: "the request target is not a valid URL",
        },
        sandboxId,
        0,
      );
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return refuse(
        req,
        res,
        {
          status: 400,
          kind: "bad_request",
          host: url.hostname,
          reason: `${url.protocol} URLs are not supported by the proxy`,
        },
        sandboxId,
        0,
      );
    }
    // With NO_PROXY empty, the worker's own calls to the forwarder arrive in absolute form.
    if (LOOPBACK_NAMES.has(url.hostname) && url.pathname.startsWith("/__lobu/")) {
      req.url = `${url.pathname}${url.search}`;
      return handleInternal(req, res, sandboxId);
    }
    const protocol = url.protocol;
    const port = url.port ? Number(url.port) : protocol === "https:" ? 443 : 80;
    const auth = await authorize(sandboxId, url.hostname);
    if (!("ok" in auth)) return refuse(req, res, auth, sandboxId, port);
    const outcome = await forward(
      req,
      res,
      {
        protocol,
        host: auth.host,
        port,
        path: `${url.pathname}${url.search}`,
        addresses: auth.addresses,
      },
      sandboxId,
      deps,
    );
    auditOutcome(
      { sandboxId, agentId: auth.policy.agentId, method: req.method ?? "", host: auth.host, port },
      outcome,
    );
  }

  /**
   * The origin-form path of a request inside an intercepted tunnel, or why it is
   * refused: it must name the host the tunnel was opened to (no domain fronting).
   */
  function innerTarget(req: IncomingMessage, t: TunnelContext): { path: string } | Refusal {
    let path = req.url ?? "/";
    let named = req.headers.host ?? "";
    if (!path.startsWith("/")) {
      try {
        const u = new URL(path);
        named = u.host;
        path = `${u.pathname}${u.search}`;
      } catch {
        return {
          status: 400,
          kind: "bad_request",
          host: t.host,
          reason: "the request target is not a valid URL",
        };
      }
    }
    const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(named);
    const sameHost =
      hp && normalizeHost(hp[1]!) === t.host && (hp[2] ? Number(hp[2]) : 443) === t.port;
    if (!sameHost) {
      return {
        status: 421,
        kind: "bad_request",
        host: t.host,
        reason: `this tunnel was opened to ${authority(t.host, t.port, "https:")}, but the request is for "${named}"; open a tunnel to that host instead`,
      };
    }
    return { path };
  }

  /**
   * A request inside an intercepted tunnel: same host only (innerTarget), and the
   * policy re-checked (it may have changed since the CONNECT) against the
   * addresses vetted then, without resolving again.
   */
  async function authorizeInner(
    req: IncomingMessage,
    t: TunnelContext,
  ): Promise<{ policy: EgressPolicy; path: string } | Refusal> {
    const target = innerTarget(req, t);
    if ("status" in target) return target;
    const policy = await policyOf(t.sandboxId);
    if ("status" in policy) return { ...policy, host: t.host };
    const d = decide({ host: t.host, allow: allowList(policy), deny: policy.deny });
    const ranges = privateRangesFor(policy, t.host);
    const blocked = t.addresses.map((a) => checkAddress(a.address, ranges)).find((c) => !c.ok);
    if (d.allowed && !blocked) return { policy, path: target.path };
    return {
      status: 403,
      kind: blocked ? "private_address" : d.rule ? "denied_rule" : "not_allowed",
      host: t.host,
      reason: blocked && !blocked.ok ? blocked.reason : d.reason,
      agentId: policy.agentId,
    };
  }

  async function onInnerRequest(req: IncomingMessage, res: ServerResponse) {
    const t = tunnelContexts.get(req.socket);
    if (!t) return res.destroy();
    const auth = await authorizeInner(req, t);
    if ("status" in auth) return refuse(req, res, auth, t.sandboxId, t.port);
    const outcome = await forward(
      req,
      res,
      { protocol: "https:", host: t.host, port: t.port, path: auth.path, addresses: t.addresses },
      t.sandboxId,
      deps,
    );
    auditOutcome(
      {
        sandboxId: t.sandboxId,
        agentId: auth.policy.agentId,
        method: req.method ?? "",
        host: t.host,
        port: t.port,
      },
      outcome,
    );
  }

  /**
   * Count a long-lived connection (CONNECT tunnel, upgraded stream) against the
   * sandbox's limit until `socket` closes. Returns its release (idempotent), or
   * null when the sandbox is over the limit.
   */
  function holdTunnel(sandboxId: string, socket: net.Socket): (() => void) | null {
    const open = tunnelsBySandbox.get(sandboxId) ?? 0;
    if (open >= limits.maxTunnelsPerSandbox) return null;
    tunnelsBySandbox.set(sandboxId, open + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const n = (tunnelsBySandbox.get(sandboxId) ?? 1) - 1;
      if (n <= 0) tunnelsBySandbox.delete(sandboxId);
      else tunnelsBySandbox.set(sandboxId, n);
    };
    // The client may have gone while its policy was looked up: no close event will come.
    if (socket.destroyed) release();
    else socket.once("close", release);
    return release;
  }

  const tunnelLimit = (sandboxId: string, host: string, agentId: string): Refusal => ({
    status: 429,
    kind: "limit",
    host,
    reason: `this sandbox already has ${tunnelsBySandbox.get(sandboxId) ?? 0} open tunnels and upgraded connections (limit ${limits.maxTunnelsPerSandbox})`,
    agentId,
  });

  /** Refuse on a raw socket (CONNECT and upgrades have no ServerResponse). */
  function refuseConnect(
    socket: net.Socket,
    req: IncomingMessage,
    r: Refusal,
    sandboxId: string | null,
    port: number,
  ) {
    if (socket.writable) socket.end(rawResponse(r, wantsJson(req.headers), authenticate(r)));
    else socket.destroy();
    auditRefusal(r, sandboxId, req.method ?? "CONNECT", port);
  }

  /**
   * Until a tunnel or upgrade is spliced, a client that hangs up is gone: the
   * HTTP server keeps its sockets half-open, so without this a departed client
   * would hold its tunnel slot until the idle timeout. Returns the undo.
   */
  function closeOnHangUp(socket: net.Socket): () => void {
    const hangUp = () => socket.destroy();
    socket.on("error", hangUp);
    socket.once("end", hangUp);
    return () => socket.off("end", hangUp);
  }

  async function onConnect(req: IncomingMessage, socket: net.Socket, head: Buffer) {
    const spliced = closeOnHangUp(socket);
    const id = identify(req.headers, true);
    if (!id.ok) return refuseConnect(socket, req, id.refusal, null, 0);
    const sandboxId = id.sandboxId;
    const target = parseAuthority(req.url ?? "");
    if (!target) {
      return refuseConnect(
        socket,
        req,
        {
          status: 400,
          kind: "bad_request",
          host: req.url ?? "",
          reason: "CONNECT needs host:port",
        },
        sandboxId,
        0,
      );
    }
    const auth = await authorize(sandboxId, target.host);
    if (!("ok" in auth)) return refuseConnect(socket, req, auth, sandboxId, target.port);
    const { host, policy, addresses } = auth;
    const port = target.port;

    const release = holdTunnel(sandboxId, socket);
    if (!release) {
      return refuseConnect(
        socket,
        req,
        tunnelLimit(sandboxId, host, policy.agentId),
        sandboxId,
        port,
      );
    }

    const base = { sandboxId, agentId: policy.agentId, method: "CONNECT", host, port };
    const bindings = await opts.placeholders.forSandbox(sandboxId);
    const intercept = bindings.some(
      (b) => swappableByProxy(b) && b.hosts.some((h) => matchesPattern(host, h)),
    );

    if (!intercept) {
      let upstream: net.Socket;
      try {
        upstream = await connectVetted(addresses, port, limits.upstreamConnectTimeoutMs);
      } catch (err) {
        const reason = `${host}:${port} could not be reached: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
        refuseConnect(
          socket,
          req,
          { status: 502, kind: "upstream", host, reason, agentId: policy.agentId },
          sandboxId,
          port,
        );
        return;
      }
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      track(upstream);
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      spliced();
      splice(socket, upstream, limits.idleTimeoutMs, release);
      audit({
        ...base,
        decision: "tunnel",
        reason: `raw TCP tunnel to ${addresses[0]!.address}:${port}`,
        status: 200,
      });
      return;
    }

    const secureContext = await opts.ca.secureContextFor(host);
    if (socket.destroyed) return;
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length) socket.unshift(head);
    spliced();
    const tlsSocket = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext,
      ALPNProtocols: ["http/1.1"],
    });
    tlsSocket.setTimeout(limits.idleTimeoutMs, () => tlsSocket.destroy());
    tlsSocket.once("close", () => {
      socket.destroy();
      release();
    });
    let handshaken = false;
    tlsSocket.once("secure", () => {
      handshaken = true;
    });
    tlsSocket.on("error", (err) => {
      if (!handshaken) {
        audit({
          ...base,
          decision: "error",
          reason: `TLS handshake with the sandbox failed (does the worker trust the Lobu CA bundle?): ${err.message}`,
        });
      }
      tlsSocket.destroy();
    });
    tunnelContexts.set(tlsSocket, { sandboxId, host, port, addresses });
    track(tlsSocket);
    audit({
      ...base,
      decision: "intercept",
      reason: `TLS terminated to swap placeholders bound to ${host}`,
      status: 200,
    });
    innerServer.emit("connection", tlsSocket);
  }

  async function onUpgrade(
    req: IncomingMessage,
    socket: net.Socket,
    head: Buffer,
    tunnel?: TunnelContext,
  ) {
    const spliced = closeOnHangUp(socket);
    const fail = (r: Refusal, sandboxId: string | null, port: number) =>
      refuseConnect(socket, req, r, sandboxId, port);
    let sandboxId: string;
    let protocol: "http:" | "https:";
    let host: string;
    let port: number;
    let path: string;
    let addresses: ResolvedAddress[];
    let agentId: string;
    if (tunnel) {
      const auth = await authorizeInner(req, tunnel);
      if ("status" in auth) return fail(auth, tunnel.sandboxId, tunnel.port);
      ({ sandboxId, host, port, addresses } = tunnel);
      agentId = auth.policy.agentId;
      protocol = "https:";
      path = auth.path;
    } else {
      const id = identify(req.headers, false);
      if (!id.ok) return fail(id.refusal, null, 0);
      sandboxId = id.sandboxId;
      let url: URL;
      try {
        url = new URL(req.url ?? "");
      } catch {
        return fail(
          {
            status: 400,
            kind: "bad_request",
            host: "",
            reason: "an upgrade through the proxy needs an absolute URL",
          },
          sandboxId,
          0,
        );
      }
      if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) {
        return fail(
          {
            status: 400,
            kind: "bad_request",
            host: url.hostname,
            reason: `${url.protocol} URLs are not supported by the proxy`,
          },
          sandboxId,
          0,
        );
      }
      protocol = url.protocol === "https:" || url.protocol === "wss:" ? "https:" : "http:";
      port = url.port ? Number(url.port) : protocol === "https:" ? 443 : 80;
      const auth = await authorize(sandboxId, url.hostname);
      if (!("ok" in auth)) return fail(auth, sandboxId, port);
      ({ host, addresses } = auth);
      agentId = auth.policy.agentId;
      path = `${url.pathname}${url.search}`;
      // Inside a tunnel the tunnel is already counted; a plain upgrade counts on its own.
      if (!holdTunnel(sandboxId, socket)) {
        return fail(tunnelLimit(sandboxId, host, agentId), sandboxId, port);
      }
    }
    try {
      await relayUpgrade({
        req,
        client: socket,
        head,
        protocol,
        host,
        port,
        path,
        hostHeader: authority(host, port, protocol),
        addresses,
        ...(opts.upstreamCa ? { upstreamCa: opts.upstreamCa } : {}),
        connectTimeoutMs: limits.upstreamConnectTimeoutMs,
        idleTimeoutMs: limits.idleTimeoutMs,
      });
      spliced();
      audit({
        sandboxId,
        agentId,
        method: req.method ?? "GET",
        host,
        port,
        decision: "allowed",
        reason: `upgrade (${req.headers.upgrade}) relayed; placeholders are not swapped in upgraded streams`,
      });
    } catch (err) {
      fail(
        {
          status: 502,
          kind: "upstream",
          host,
          reason: `${host}:${port} could not be reached: ${(err as Error).message}`,
          agentId,
        },
        sandboxId,
        port,
      );
    }
  }

  const failedSockets = new WeakSet<net.Socket>();
  function onClientError(err: NodeJS.ErrnoException, socket: net.Socket) {
    // The parser may report more errors for bytes still arriving; answer once.
    if (failedSockets.has(socket)) return void socket.destroy();
    failedSockets.add(socket);
    const sandboxId =
      opts.identity.kind === "sandbox"
        ? opts.identity.sandboxId
        : (tunnelContexts.get(socket)?.sandboxId ?? null);
    const host = tunnelContexts.get(socket)?.host ?? "";
    let r: Refusal;
    if (err.code === "HPE_HEADER_OVERFLOW") {
      r = {
        status: 431,
        kind: "bad_request",
        host,
        reason: `the request head is larger than ${limits.maxHeaderBytes} bytes`,
      };
    } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      r = {
        status: 408,
        kind: "bad_request",
        host,
        reason: "the request was not received in time",
      };
    } else {
      r = {
        status: 400,
        kind: "bad_request",
        host,
        reason: `malformed HTTP request (${err.code ?? err.message})`,
      };
    }
    if (socket.writable && err.code !== "ECONNRESET") socket.end(rawResponse(r, false));
    else socket.destroy();
    if (err.code !== "ECONNRESET") {
      audit({
        sandboxId,
        method: "",
        host,
        port: tunnelContexts.get(socket)?.port ?? 0,
        decision: "denied",
        reason: r.reason,
        status: r.status,
      });
    }
  }

  const crash = (what: string, res?: ServerResponse, socket?: net.Socket) => (err: unknown) => {
    opts.logger?.error({ err }, `egress ${what} failed`);
    if (res && !res.headersSent) {
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8", connection: "close" });
      res.end("Lobu egress proxy: internal error\n");
    } else res?.destroy();
    socket?.destroy();
  };

  server.on("connection", track);
  server.on("request", (req, res) => onRequest(req, res).catch(crash("request", res)));
  server.on("connect", (req, socket, head) =>
    onConnect(req, socket as net.Socket, head).catch(
      crash("CONNECT", undefined, socket as net.Socket),
    ),
  );
  server.on("upgrade", (req, socket, head) =>
    onUpgrade(req, socket as net.Socket, head).catch(
      crash("upgrade", undefined, socket as net.Socket),
    ),
  );
  server.on("clientError", onClientError);
  innerServer.on("request", (req, res) => onInnerRequest(req, res).catch(crash("request", res)));
  innerServer.on("upgrade", (req, socket, head) => {
    const t = tunnelContexts.get(req.socket);
    if (!t) return socket.destroy();
    onUpgrade(req, socket as net.Socket, head, t).catch(
      crash("upgrade", undefined, socket as net.Socket),
    );
  });
  innerServer.on("clientError", onClientError);

  server.shutdown = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      innerServer.closeAllConnections();
      for (const s of openSockets) s.destroy();
      agents.httpAgent.destroy();
      agents.httpsAgent.destroy();
    });
  return server;
}
