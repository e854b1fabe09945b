import { bestEffort, type FailureLog } from "@lobu/core/best-effort";
import { type Attributes, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";

/** The gateway's tracer. A no-op until startTelemetry() registers an exporter. */
export const tracer = trace.getTracer("lobu-gateway", "0.1.0");

export interface Telemetry {
  enabled: boolean;
  endpoint?: string;
  shutdown(): Promise<void>;
}

/**
 * Export traces over OTLP/HTTP when an endpoint is configured
 * (`[telemetry] otlp_endpoint` or OTEL_EXPORTER_OTLP_ENDPOINT). Without one,
 * instrumentation costs nothing.
 */
export function startTelemetry(opts: {
  endpoint?: string;
  serviceName: string;
  instanceId: string;
  /** Where spans that could not be exported at shutdown are reported. */
  log: FailureLog;
}): Telemetry {
  if (!opts.endpoint) return { enabled: false, shutdown: async () => {} };
  const base = opts.endpoint.replace(/\/+$/, "");
  const url = base.endsWith("/v1/traces") ? base : `${base}/v1/traces`;
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: opts.serviceName,
      [ATTR_SERVICE_VERSION]: "0.1.0",
      "service.instance.id": opts.instanceId,
    }),
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: 1000 }),
    ],
  });
  provider.register();
  return {
    enabled: true,
    endpoint: url,
    async shutdown() {
      const lost = bestEffort(opts.log, "last traces not exported", { endpoint: url });
      await provider.forceFlush().catch(lost);
      await provider.shutdown().catch(lost);
    },
  };
}

/** Run `fn` in a span that records errors and ends when `fn` settles. */
export async function inSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}
