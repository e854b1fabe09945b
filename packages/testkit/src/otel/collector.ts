import { listen, readRaw, sendJson } from "../platform-kit/http.ts";

export interface CollectedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
  status?: { code?: number; message?: string };
}

/** One data point of a metric as exported (cumulative by default: each export has the totals). */
export interface CollectedPoint {
  name: string;
  kind: "sum" | "gauge" | "histogram";
  attributes: Record<string, string | number | boolean>;
  /** Sums and gauges: the value; histograms: the sum of the recorded values. */
  value: number;
  /** Histograms: how many values were recorded. */
  count?: number;
  resource: Record<string, string | number | boolean>;
}

export interface OtlpCollector {
  url: string;
  spans: CollectedSpan[];
  /** Every metric data point received, in order (later exports after earlier ones). */
  points: CollectedPoint[];
  /**
   * The latest exported point of metric `name` matching `attributes`
   * (a subset), waiting until one satisfies `until` (default: any).
   */
  waitForPoint(
    name: string,
    opts?: {
      attributes?: Record<string, string | number | boolean>;
      until?: (p: CollectedPoint) => boolean;
      timeoutMs?: number;
    },
  ): Promise<CollectedPoint>;
  waitForSpan(
    predicate: (s: CollectedSpan) => boolean,
    opts?: { timeoutMs?: number },
  ): Promise<CollectedSpan>;
  close(): Promise<void>;
}

type AnyValue = {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
};
type KeyValue = { key: string; value: AnyValue };

/** The part of an OTLP/JSON ExportTraceServiceRequest the collector keeps. */
interface ExportRequest {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: {
      spans?: {
        name: string;
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        attributes?: KeyValue[];
        status?: { code?: number; message?: string };
      }[];
    }[];
  }[];
}

type NumberPoint = { attributes?: KeyValue[]; asInt?: string | number; asDouble?: number };
type HistogramPoint = { attributes?: KeyValue[]; count?: string | number; sum?: number };

/** The part of an OTLP/JSON ExportMetricsServiceRequest the collector keeps. */
interface MetricsRequest {
  resourceMetrics?: {
    resource?: { attributes?: KeyValue[] };
    scopeMetrics?: {
      metrics?: {
        name: string;
        sum?: { dataPoints?: NumberPoint[] };
        gauge?: { dataPoints?: NumberPoint[] };
        histogram?: { dataPoints?: HistogramPoint[] };
      }[];
    }[];
  }[];
}

function pointsOf(payload: MetricsRequest | null): CollectedPoint[] {
  const out: CollectedPoint[] = [];
  for (const rm of payload?.resourceMetrics ?? []) {
    const resource = attrs(rm.resource?.attributes);
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        for (const kind of ["sum", "gauge"] as const) {
          for (const p of m[kind]?.dataPoints ?? [])
            out.push({
              name: m.name,
              kind,
              attributes: attrs(p.attributes),
              value: Number(p.asInt ?? p.asDouble ?? 0),
              resource,
            });
        }
        for (const p of m.histogram?.dataPoints ?? [])
          out.push({
            name: m.name,
            kind: "histogram",
            attributes: attrs(p.attributes),
            value: p.sum ?? 0,
            count: Number(p.count ?? 0),
            resource,
          });
      }
    }
  }
  return out;
}

function attrs(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) {
    out[key] =
      value.stringValue ??
      (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
      value.doubleValue ??
      value.boolValue ??
      "";
  }
  return out;
}

/**
 * An OpenTelemetry collector emulator: accepts OTLP/HTTP JSON exports at
 * POST /v1/traces and POST /v1/metrics (what @opentelemetry/exporter-trace-otlp-http
 * and exporter-metrics-otlp-http send) and keeps the spans and data points for
 * assertions.
 */
export async function startOtlpCollector(): Promise<OtlpCollector> {
  const spans: CollectedSpan[] = [];
  const points: CollectedPoint[] = [];
  const waiters: (() => void)[] = [];
  const http = await listen(async (req, res) => {
    const body = (await readRaw(req)).toString("utf8");
    if (req.method !== "POST" || (req.url !== "/v1/traces" && req.url !== "/v1/metrics")) {
      sendJson(res, 404, { error: "the collector serves POST /v1/traces and /v1/metrics only" });
      return;
    }
    if (!(req.headers["content-type"] ?? "").includes("json")) {
      sendJson(res, 415, { error: "only OTLP/JSON is supported" });
      return;
    }
    let payload: ExportRequest | null;
    try {
      payload = JSON.parse(body) as ExportRequest | null;
    } catch {
      sendJson(res, 400, { error: "the body is not JSON" });
      return;
    }
    if (req.url === "/v1/metrics") {
      points.push(...pointsOf(payload as MetricsRequest | null));
      for (const w of waiters.splice(0)) w();
      sendJson(res, 200, {});
      return;
    }
    for (const rs of payload?.resourceSpans ?? []) {
      const resource = attrs(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          spans.push({
            name: s.name,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId || undefined,
            attributes: attrs(s.attributes),
            resource,
            status: s.status,
          });
        }
      }
    }
    for (const w of waiters.splice(0)) w();
    sendJson(res, 200, {});
  });
  const { url } = http;
  const nextDelivery = () =>
    new Promise<void>((r) => {
      const timer = setTimeout(r, 500);
      waiters.push(() => {
        clearTimeout(timer);
        r();
      });
    });
  return {
    url,
    spans,
    points,
    async waitForSpan(predicate, opts = {}) {
      const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
      for (;;) {
        const found = spans.find(predicate);
        if (found) return found;
        if (Date.now() > deadline)
          throw new Error(
            `no matching span among ${spans.map((s) => s.name).join(", ") || "none"}`,
          );
        await nextDelivery();
      }
    },
    async waitForPoint(name, opts = {}) {
      const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
      const wanted = Object.entries(opts.attributes ?? {});
      for (;;) {
        const latest = points.findLast(
          (p) => p.name === name && wanted.every(([k, v]) => p.attributes[k] === v),
        );
        if (latest && (opts.until ?? (() => true))(latest)) return latest;
        if (Date.now() > deadline)
          throw new Error(
            `no matching point of ${name}; latest: ${latest ? JSON.stringify(latest) : "none"}`,
          );
        await nextDelivery();
      }
    },
    close: () => http.close(),
  };
}
