import { bestEffort, type FailureLog } from "@lobu/core/best-effort";
import { Pool } from "undici";
import type { ResolvedAddress } from "./addresses.ts";
import { type UpstreamTrust, upstreamTlsOptions } from "./tunnel.ts";

/**
 * Upstream connections of the forwarder: one undici `Pool` per vetted address,
 * port, scheme and TLS name, so a connection is only ever reused for the same
 * host name and address it was opened for (the address the policy vetted, never
 * the name resolved again). Keep-alive, no pipelining (one request at a time
 * per connection, as a sandbox's own client would do); undici keeps TLS
 * sessions per pool, so a new connection to the same origin resumes.
 *
 * undici rather than Node's http client: the proxy does the work of one server
 * and one client per request, and undici's client side costs less per request.
 */

/** Pools kept at once; the least recently used idle one is closed beyond this. */
const MAX_POOLS = 512;
/** Connections per pool (the proxy's concurrency to one origin). */
const CONNECTIONS_PER_POOL = 256;

export interface UpstreamPoolOptions {
  connectTimeoutMs: number;
  /** CAs trusted for upstream TLS; undefined = Node's default store. */
  upstreamCa?: UpstreamTrust;
  /** Where a pool that did not close is reported (the egress server's logger). */
  log?: FailureLog;
}

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();
  readonly #opts: UpstreamPoolOptions;
  #closed = false;

  constructor(opts: UpstreamPoolOptions) {
    this.#opts = opts;
  }

  get #log(): FailureLog {
    return this.#opts.log ?? console;
  }

  /** The pool for `host` at the vetted `addr`; `host` names the TLS server (SNI and certificate). */
  poolFor(protocol: "http:" | "https:", host: string, addr: ResolvedAddress, port: number): Pool {
    if (this.#closed) throw new Error("the egress proxy is shutting down");
    const literal = addr.family === 6 ? `[${addr.address}]` : addr.address;
    const origin = `${protocol}//${literal}:${port}`;
    const key = protocol === "https:" ? `${origin} ${host}` : origin;
    const hit = this.#pools.get(key);
    if (hit) {
      // Most recently used last, so eviction takes the oldest.
      this.#pools.delete(key);
      this.#pools.set(key, hit);
      return hit;
    }
    const pool = new Pool(origin, {
      connections: CONNECTIONS_PER_POOL,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: this.#opts.connectTimeoutMs,
      // The forwarder sets its own idle timeouts per request.
      headersTimeout: 0,
      bodyTimeout: 0,
      ...(protocol === "https:"
        ? {
            connect: {
              ...upstreamTlsOptions(host, this.#opts.upstreamCa),
              ALPNProtocols: ["http/1.1"],
            },
          }
        : {}),
    });
    this.#pools.set(key, pool);
    if (this.#pools.size > MAX_POOLS) this.#evict();
    return pool;
  }

  /** Close the least recently used pool (its requests in flight finish first). */
  #evict(): void {
    const [key, pool] = this.#pools.entries().next().value!;
    this.#pools.delete(key);
    pool.close().catch(bestEffort(this.#log, "idle upstream pool not closed", { pool: key }));
  }

  /** Cut every upstream connection now. */
  async destroy(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(
      pools.map((p) => p.destroy().catch(bestEffort(this.#log, "upstream pool not destroyed"))),
    );
  }
}
