import type { SecureFetch } from "just-bash";

export interface VirtualNetworkOptions {
  /**
   * The only route to the network: the pool passes a fetch that goes through the gateway's
   * egress proxy (which applies policy and tags the sandbox). Without it, curl fails with
   * a clear message.
   */
  fetch?: typeof fetch;
  /** Largest response body kept (default 10 MiB). */
  maxResponseBytes?: number;
  /** Per-request deadline (default 30 s). */
  timeoutMs?: number;
  /** Redirect hops followed for `curl -L` (default 10); each hop goes through `fetch` again. */
  maxRedirects?: number;
}

type FetchResult = Awaited<ReturnType<SecureFetch>>;
type SecureFetchOptions = NonNullable<Parameters<SecureFetch>[1]>;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export const NETWORK_DISABLED_MESSAGE =
  "network access is not available in this workspace (no egress route configured)";

async function readCapped(response: Response, max: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > max) {
    await response.body?.cancel();
    throw new Error(`response too large (${declared} bytes; the limit is ${max})`);
  }
  if (!response.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > max) {
      await response.body.cancel().catch(() => undefined);
      throw new Error(`response too large (more than ${max} bytes)`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Adapt a WHATWG fetch to just-bash's SecureFetch (what curl calls). Policy (allowlists,
 * credentials) is the gateway's job; this layer only guarantees every request, redirect
 * hops included, goes through the given function, and bounds size and time.
 */
export function createVirtualFetch(options: VirtualNetworkOptions = {}): SecureFetch {
  const route = options.fetch;
  if (!route) {
    return async () => {
      throw new Error(NETWORK_DISABLED_MESSAGE);
    };
  }
  const maxBytes = options.maxResponseBytes ?? 10 * 1024 * 1024;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxRedirects = options.maxRedirects ?? 10;

  return async (url: string, opts: SecureFetchOptions = {}): Promise<FetchResult> => {
    const deadline = AbortSignal.timeout(Math.min(opts.timeoutMs ?? timeoutMs, timeoutMs));
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
    let method = (opts.method ?? "GET").toUpperCase();
    let body = opts.body;
    let current = url;
    for (let hop = 0; ; hop++) {
      const protocol = new URL(current).protocol;
      if (protocol !== "http:" && protocol !== "https:") {
        throw new Error(`unsupported URL scheme ${protocol} (only http and https)`);
      }
      const response = await route(current, {
        method,
        headers: opts.headers,
        body: method === "GET" || method === "HEAD" ? undefined : body,
        redirect: "manual",
        signal,
      });
      const location = response.headers.get("location");
      if (opts.followRedirects && REDIRECTS.has(response.status) && location) {
        await response.body?.cancel().catch(() => undefined);
        if (hop + 1 > Math.min(opts.maxRedirects ?? maxRedirects, maxRedirects)) {
          throw new Error(`too many redirects (more than ${maxRedirects})`);
        }
        current = new URL(location, current).href;
        // Like curl -L: 301/302/303 continue as GET without a body; 307/308 replay as sent.
        if (response.status !== 307 && response.status !== 308) {
          if (method !== "HEAD") method = "GET";
          body = undefined;
        }
        continue;
      }
      const headers: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        headers[name.toLowerCase()] = value;
      });
      return {
        status: response.status,
        statusText: response.statusText,
        headers,
        body: method === "HEAD" ? new Uint8Array(0) : await readCapped(response, maxBytes),
        url: current,
      };
    }
  };
}
