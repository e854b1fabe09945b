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

export interface OtlpCollector {
  url: string;
  spans: CollectedSpan[];
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
 * An OpenTelemetry collector emulator: accepts OTLP/HTTP JSON trace exports at
 * POST /v1/traces (what @opentelemetry/exporter-trace-otlp-http sends) and keeps
 * the spans for assertions.
 */
export async function startOtlpCollector(): Promise<OtlpCollector> {
  const spans: CollectedSpan[] = [];
  const waiters: (() => void)[] = [];
  const http = await listen(async (req, res) => {
    const body = (await readRaw(req)).toString("utf8");
    if (req.method !== "POST" || req.url !== "/v1/traces") {
      sendJson(res, 404, { error: "the collector serves POST /v1/traces only" });
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
  return {
    url,
    spans,
    async waitForSpan(predicate, opts = {}) {
      const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
      for (;;) {
        const found = spans.find(predicate);
        if (found) return found;
        if (Date.now() > deadline)
          throw new Error(
            `no matching span among ${spans.map((s) => s.name).join(", ") || "none"}`,
          );
        await new Promise<void>((r) => {
          const timer = setTimeout(r, 500);
          waiters.push(() => {
            clearTimeout(timer);
            r();
          });
        });
      }
    },
    close: () => http.close(),
  };
}
