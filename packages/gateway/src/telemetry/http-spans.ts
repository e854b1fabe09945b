import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { MiddlewareHandler } from "hono";
import { contextOf, tracer } from "./otel.ts";

/** Routes not worth a span (probes hit them every few seconds). */
const QUIET = new Set(["/healthz", "/readyz"]);

/**
 * A server span per HTTP request (webhooks, the REST API, pages), continuing
 * the caller's W3C `traceparent` when it sends one: a message's trace starts
 * at the request that delivered it. Named by method and route pattern, never
 * by the path (webhook paths can hold secrets).
 */
export function httpSpans(): MiddlewareHandler {
  return async (c, next) => {
    if (QUIET.has(c.req.path)) return next();
    const parent = contextOf(c.req.header("traceparent"));
    await tracer.startActiveSpan(
      `HTTP ${c.req.method}`,
      { kind: SpanKind.SERVER, attributes: { "http.request.method": c.req.method } },
      parent,
      async (span) => {
        try {
          await next();
          span.setAttribute("http.route", c.req.routePath);
          span.updateName(`${c.req.method} ${c.req.routePath}`);
          span.setAttribute("http.response.status_code", c.res.status);
          if (c.res.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        } finally {
          span.end();
        }
      },
    );
  };
}
