import type http from "node:http";
import type net from "node:net";
import type { Resolver } from "./addresses.ts";
import type { RecordAudit } from "./audit-records.ts";
import type { CertificateAuthority } from "./ca.ts";
import type { OpenSockets, TunnelContext, TunnelSlots } from "./connections.ts";
import type { ForwardDeps } from "./forwarding.ts";
import type { SandboxIdentification } from "./identity.ts";
import type { InternalHandler } from "./internal-endpoint.ts";
import type { EgressLimits } from "./limits.ts";
import type { PolicySource } from "./policy.ts";
import type { UpstreamTrust } from "./tunnel.ts";

/**
 * What the egress handlers share, built once per endpoint by createEgressServer.
 * Each handler names the slice it uses (a Pick of this), so its inputs are
 * explicit and a test builds only that slice.
 */
export interface EgressContext extends SandboxIdentification, PolicySource {
  audit: RecordAudit;
  limits: EgressLimits;
  /** The installation CA, for hosts where placeholders are swapped over TLS. */
  ca: CertificateAuthority;
  /** Handler for `/__lobu/*`; 404 when absent. */
  internal?: InternalHandler;
  resolver?: Resolver;
  upstreamCa?: UpstreamTrust;
  /** What the forwarder needs for one request (placeholders, secrets, agents, limits). */
  forwarding: ForwardDeps;
  tunnels: TunnelSlots;
  sockets: OpenSockets;
  /** Intercepted TLS sockets → the tunnel each was opened for. */
  intercepted: WeakMap<net.Socket, TunnelContext>;
  /** Parses the requests inside intercepted tunnels; never listens itself. */
  innerServer: http.Server;
}
