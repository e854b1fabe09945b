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

/**
 * Most the gateway reads of one answer (a listing, a result, metadata, or one
 * event stream over its life): a server that never stops sending must not
 * fill the gateway's memory. Results are cut to 50,000 characters for the
 * model anyway; this only stops a flood.
 */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

export function guardedFetch(opts: OutboundOptions): FetchLike {
  const guarded = urlGuard(opts);
  return async (input, init) => bounded(await guarded(input, init), MAX_RESPONSE_BYTES);
}

function urlGuard(opts: OutboundOptions): FetchLike {
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

/** The same response, whose body errors once more than `limit` bytes came. */
function bounded(res: Response, limit: number): Response {
  if (!res.body) return res;
  let seen = 0;
  const cap = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > limit)
        controller.error(
          new RefusedUrl(`the MCP server's answer is larger than ${limit / 1024 / 1024} MiB`),
        );
      else controller.enqueue(chunk);
    },
  });
  return new Response(res.body.pipeThrough(cap), {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}
