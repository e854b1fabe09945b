import { bestEffort, type FailureLog } from "@lobu/core/best-effort";
import {
  type Attributes,
  type Context,
  context,
  metrics,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TimeInput,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";
import { resetGatewayMetrics } from "./metrics.ts";

/** The gateway's tracer. A no-op until startTelemetry() registers an exporter. */
export const tracer = trace.getTracer("lobu-gateway", "0.1.0");

export interface Telemetry {
  enabled: boolean;
  endpoint?: string;
  shutdown(): Promise<void>;
}

/** Where the OTLP/HTTP exporters post: `<base>/v1/traces` and `<base>/v1/metrics`. */
function signalUrl(endpoint: string, signal: "traces" | "metrics"): string {
  const base = endpoint.replace(/\/+$/, "").replace(/\/v1\/(traces|metrics)$/, "");
  return `${base}/v1/${signal}`;
}

/**
 * Export traces and metrics over OTLP/HTTP (JSON) when an endpoint is
 * configured (`[telemetry] otlp_endpoint` or OTEL_EXPORTER_OTLP_ENDPOINT).
 * Without one, instrumentation costs nothing.
 */
export function startTelemetry(opts: {
  endpoint?: string;
  serviceName: string;
  instanceId: string;
  /** How often metrics are exported (default 60 s; OTEL_METRIC_EXPORT_INTERVAL). */
  metricIntervalMs?: number;
  /** Where spans that could not be exported at shutdown are reported. */
  log: FailureLog;
}): Telemetry {
  if (!opts.endpoint) return { enabled: false, shutdown: async () => {} };
  const url = signalUrl(opts.endpoint, "traces");
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: opts.serviceName,
    [ATTR_SERVICE_VERSION]: "0.1.0",
    "service.instance.id": opts.instanceId,
  });
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: 1000 }),
    ],
  });
  provider.register();
  const interval =
    opts.metricIntervalMs ?? (Number(process.env.OTEL_METRIC_EXPORT_INTERVAL) || 60_000);
  const meters = new MeterProvider({
    resource,
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: signalUrl(opts.endpoint, "metrics") }),
        exportIntervalMillis: interval,
        exportTimeoutMillis: Math.min(30_000, interval),
      }),
    ],
  });
  metrics.setGlobalMeterProvider(meters);
  resetGatewayMetrics();
  return {
    enabled: true,
    endpoint: url,
    async shutdown() {
      const lost = bestEffort(opts.log, "last traces not exported", { endpoint: url });
      await provider.forceFlush().catch(lost);
      await provider.shutdown().catch(lost);
      const lostMetrics = bestEffort(opts.log, "last metrics not exported", { endpoint: url });
      await meters.forceFlush().catch(lostMetrics);
      await meters.shutdown().catch(lostMetrics);
    },
  };
}

/** Run `fn` in a span that records errors and ends when `fn` settles. */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  opts: { parent?: Context; kind?: SpanKind } = {},
): Promise<T> {
  const parent = opts.parent ?? context.active();
  return tracer.startActiveSpan(
    name,
    { attributes, ...(opts.kind !== undefined ? { kind: opts.kind } : {}) },
    parent,
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        failSpan(span, err);
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

export function failSpan(span: Span, err: unknown): void {
  span.recordException(err as Error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
}

/**
 * A span that has already happened (e.g. the time a message waited in the
 * queue): started at `start`, ended now.
 */
export function pastSpan(
  name: string,
  start: TimeInput,
  attributes: Attributes,
  parent: Context,
  kind: SpanKind = SpanKind.INTERNAL,
): Span {
  const span = tracer.startSpan(name, { startTime: start, attributes, kind }, parent);
  span.end();
  return span;
}

/*
 * W3C trace context. An explicit propagator (not the global one), so ids pass
 * through the queue and the worker protocol whether or not an exporter is set.
 */
const w3c = new W3CTraceContextPropagator();
const getter = {
  keys: (c: Record<string, string>) => Object.keys(c),
  get: (c: Record<string, string>, k: string) => c[k],
};
const setter = {
  set(c: Record<string, string>, k: string, v: string) {
    c[k] = v;
  },
};

/** The `traceparent` of `ctx`'s span (the active one by default); undefined when there is none. */
export function traceparentOf(ctx: Context = context.active()): string | undefined {
  const carrier: Record<string, string> = {};
  w3c.inject(ctx, carrier, setter);
  return carrier.traceparent;
}

/** The `traceparent` of `span`. */
export function traceparentOfSpan(span: Span): string | undefined {
  return traceparentOf(trace.setSpan(ROOT_CONTEXT, span));
}

/** A context whose parent is the span `traceparent` names (the root context for none or a malformed one). */
export function contextOf(traceparent: string | undefined): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return w3c.extract(ROOT_CONTEXT, { traceparent }, getter);
}

/** The trace id of a `traceparent` (undefined when malformed). */
function traceIdOf(traceparent: string | undefined): string | undefined {
  const span = trace.getSpanContext(contextOf(traceparent));
  return span && trace.isSpanContextValid(span) ? span.traceId : undefined;
}

/**
 * The parent for a span the gateway makes on a sandbox's behalf (relay,
 * egress, gateway tool): the `claimed` context the worker sent when it is of
 * the sandbox's running turn's trace, else that turn's own. A sandbox cannot
 * attach spans to another trace by sending another trace's id.
 */
export function turnParent(turn: string | undefined, claimed: string | undefined): Context {
  const own = traceIdOf(turn);
  if (own && claimed && traceIdOf(claimed) === own) return contextOf(claimed);
  return contextOf(turn);
}

export { SpanKind };
