import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import { normalizeHost } from "../domain/host-patterns.ts";
import { type Resolver, vetHost } from "../proxy/addresses.ts";

/**
 * The fetch the gateway's MCP clients use. The server's own host name (any
 * port) is the operator's choice (it may be internal); every other URL — the protected
 * resource metadata, the authorization server and its endpoints, all of which
 * the server or its metadata names — must be https on a host that resolves
 * to public addresses only (the egress proxy's address guard, with the
 * operator's `network.allow_private_ranges`), and is fetched without
 * following redirects. A server cannot point the gateway at the cloud
 * metadata endpoint or at a service on the internal network.
 */
export interface OutboundOptions {
  /** The configured server URL: its host is trusted. */
  serverUrl: string;
  allowPrivateRanges: readonly string[];
  resolver?: Resolver;
  fetch?: FetchLike;
}

export class RefusedUrl extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RefusedUrl";
  }
}

export function guardedFetch(opts: OutboundOptions): FetchLike {
  const trusted = new URL(opts.serverUrl).hostname;
  const base = opts.fetch ?? fetch;
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.hostname === trusted) return base(input, init);
    if (url.protocol !== "https:")
      throw new RefusedUrl(`refused ${url.origin}: the MCP server's metadata must use https`);
    const host = normalizeHost(url.hostname);
    if (!host) throw new RefusedUrl(`refused ${url.origin}: not a valid host`);
    const vetted = await vetHost(host, {
      allowPrivateRanges: opts.allowPrivateRanges,
      ...(opts.resolver ? { resolver: opts.resolver } : {}),
    });
    if (!vetted.ok) throw new RefusedUrl(`refused ${url.origin}: ${vetted.reason}`);
    return base(input, { ...init, redirect: "manual" });
  };
}
