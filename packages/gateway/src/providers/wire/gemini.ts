import { count, EventUsage, isRecord } from "./readers.ts";
import type { ProviderWire, UsageReader, WireRoute } from "./types.ts";

const MODEL = "[A-Za-z0-9._-]{1,128}";

/** The generating and counting calls of the Gemini API on a model, under a path prefix. */
export function geminiRoutes(prefix: string, label: string): WireRoute[] {
  return [
    {
      method: "POST",
      path: new RegExp(`^${prefix}/models/${MODEL}:(streamGenerateContent|generateContent)$`),
      label: `POST ${label}/models/<model>:streamGenerateContent`,
      generates: true,
    },
    {
      method: "POST",
      path: new RegExp(`^${prefix}/models/${MODEL}:countTokens$`),
      label: `POST ${label}/models/<model>:countTokens`,
    },
  ];
}

/** A Gemini path (`…/models/<model>:<method>`) naming another model (failover). */
export function geminiPathWithModel(path: string, model: string): string {
  return path.replace(
    new RegExp(`/models/${MODEL}(:[A-Za-z]+)$`),
    (_m, method: string) => `/models/${encodeURIComponent(model)}${method}`,
  );
}

/** The model named in a Gemini path (`…/models/<model>:<method>`). */
export function geminiModelOf(path: string): string | undefined {
  return new RegExp(`/models/(${MODEL}):[A-Za-z]+$`).exec(path)?.[1];
}

/**
 * `usageMetadata` of Gemini answers (Gemini API and Vertex AI alike): every
 * streamed chunk carries the counts so far, the last one the final counts.
 * Thinking tokens are billed as output; cached ones are part of the prompt.
 */
export function geminiUsage(contentType: string): UsageReader {
  return new EventUsage(contentType, (body, usage) => {
    const u = body.usageMetadata;
    if (isRecord(u)) {
      usage.inputTokens = count(u.promptTokenCount) + count(u.toolUsePromptTokenCount);
      usage.cacheReadTokens = Math.min(count(u.cachedContentTokenCount), usage.inputTokens);
      usage.outputTokens = count(u.candidatesTokenCount) + count(u.thoughtsTokenCount);
    }
    const first = Array.isArray(body.candidates) ? body.candidates[0] : undefined;
    return isRecord(first) && typeof first.finishReason === "string" && isRecord(u);
  });
}

/** Google's error shape (`{ error: { code, message, status } }`). */
export function googleErrorBody(status: number, kind: string, message: string): string {
  const STATUS: Record<number, string> = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    502: "UNAVAILABLE",
  };
  return JSON.stringify({
    error: { code: status, message, status: STATUS[status] ?? kind.toUpperCase() },
  });
}

/** The Gemini API (generativelanguage.googleapis.com) with an API key (`x-goog-api-key`). */
export const geminiWire: ProviderWire = {
  api: "google-generative-ai",
  routes: [
    ...geminiRoutes("/v1(beta)?", "/v1beta"),
    {
      method: "GET",
      path: new RegExp(`^/v1(beta)?/models(/${MODEL})?$`),
      label: "GET /v1beta/models",
    },
  ],
  placeholderHeaders: ["x-goog-api-key", "authorization"],
  credentialHeaders: ["x-goog-api-key", "authorization"],
  modelOf: (path, body) =>
    geminiModelOf(path) ?? (typeof body.model === "string" ? body.model : undefined),
  outputFields: ["generationConfig.maxOutputTokens"],
  choicesField: "generationConfig.candidateCount",
  pathWithModel: geminiPathWithModel,
  listing: {
    path: "/v1beta/models",
    rejects: [400],
    // `{ models: [{ name: "models/gemini-2.5-flash" }] }`
    ids: (body) => {
      const models = (body as { models?: unknown } | null)?.models;
      return Array.isArray(models)
        ? models.map((m) => String((m as { name?: unknown })?.name ?? "").replace(/^models\//, ""))
        : [];
    },
  },
  async authenticate(req, key) {
    // A key in the query would go upstream beside the real one: only the header counts.
    req.url.searchParams.delete("key");
    req.headers.set("x-goog-api-key", key);
  },
  usage: geminiUsage,
  errorBody: googleErrorBody,
};
