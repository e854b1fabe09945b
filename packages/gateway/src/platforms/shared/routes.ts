import type { Handler, Hono } from "hono";
import { boundedBody } from "../../http/body-limit.ts";

/**
 * Largest body any platform route reads (1 MiB). Slack's and Telegram's own
 * payloads are far smaller (messages are capped at 40,000 and 4,096
 * characters); whatever arrives before a signature is checked is bounded by
 * this.
 */
export const PLATFORM_MAX_BODY_BYTES = 1_048_576;

export interface PlatformRouteOptions {
  /** A tighter body limit for this route; it can never exceed the platform limit. */
  maxBodyBytes?: number;
}

/**
 * Where an adapter registers its webhook routes. Every route gets the
 * platform body limit (applied while the body is read), so no adapter, and no
 * platform added later, can forget it.
 */
export interface PlatformRoutes {
  get(path: string, handler: Handler, opts?: PlatformRouteOptions): void;
  post(path: string, handler: Handler, opts?: PlatformRouteOptions): void;
}

/** Platform routes on `app` (mounted at the gateway root), each behind the body limit. */
export function platformRoutes(app: Hono, maxBodyBytes = PLATFORM_MAX_BODY_BYTES): PlatformRoutes {
  const add =
    (method: "GET" | "POST") =>
    (path: string, handler: Handler, opts: PlatformRouteOptions = {}) => {
      const limit = Math.min(opts.maxBodyBytes ?? maxBodyBytes, maxBodyBytes);
      app.on(method, path, boundedBody(limit), handler);
    };
  return { get: add("GET"), post: add("POST") };
}
