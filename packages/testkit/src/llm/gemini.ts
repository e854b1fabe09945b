import type { IncomingHttpHeaders, ServerResponse } from "node:http";
import { pacer, SseStream, sendJson } from "./http.ts";
import { newId } from "./ids.ts";
import { defaultErrorMessage, type Reply } from "./reply.ts";
import type { MockLlmApi } from "./types.ts";
import { isRecord, type MockError, retryAfter, type Wire } from "./wire.ts";

/**
 * Gemini's `generateContent` wire (the Gemini API and Vertex AI share it):
 * `contents` of `parts` in, candidates out; `streamGenerateContent?alt=sse`
 * streams chunks as server-sent events (without `alt=sse`: one JSON array),
 * each carrying `usageMetadata` so far.
 */

const STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};

export function sendGoogleError(res: ServerResponse, error: MockError): void {
  sendJson(
    res,
    error.status,
    {
      error: {
        code: error.status,
        message: error.message ?? defaultErrorMessage(error.status),
        status: error.type ?? STATUS[error.status] ?? "UNKNOWN",
      },
    },
    retryAfter(error),
  );
}

/** The model in `…/models/<model>:<method>`. */
export function geminiModelOf(url: URL): string | undefined {
  return /\/models\/([^/:]+):[A-Za-z]+$/.exec(url.pathname)?.[1];
}

function parts(content: unknown): Record<string, unknown>[] {
  return isRecord(content) && Array.isArray(content.parts) ? content.parts.filter(isRecord) : [];
}

function inspect(body: Record<string, unknown>) {
  const contents = Array.isArray(body.contents) ? body.contents.filter(isRecord) : [];
  let lastUserText = "";
  for (const c of contents) {
    if (c.role === "model") continue;
    const text = parts(c)
      .filter((p) => typeof p.text === "string")
      .map((p) => p.text as string)
      .join("\n");
    if (text) lastUserText = text;
  }
  let lastModel = -1;
  contents.forEach((c, i) => {
    if (c.role === "model") lastModel = i;
  });
  const toolResults = contents
    .slice(lastModel + 1)
    .flatMap(parts)
    .filter((p) => isRecord(p.functionResponse))
    .map((p) => {
      const r = p.functionResponse as Record<string, unknown>;
      const response = isRecord(r.response) ? r.response : {};
      const content = response.output ?? response.error ?? response;
      return {
        id: String(r.id ?? r.name),
        content: typeof content === "string" ? content : JSON.stringify(content),
        isError: response.error !== undefined,
      };
    });
  return { lastUserText, toolResults };
}

function usage(reply: Reply, final: boolean) {
  return {
    promptTokenCount: reply.inputTokens,
    ...(final ? { candidatesTokenCount: reply.outputTokens } : {}),
    totalTokenCount: reply.inputTokens + (final ? reply.outputTokens : 0),
    promptTokensDetails: [{ modality: "TEXT", tokenCount: reply.inputTokens }],
  };
}

function finishReason(reply: Reply): string {
  const s = reply.stopReason;
  if (s === "max_tokens" || s === "length") return "MAX_TOKENS";
  if (s === "refusal" || s === "content_filter") return "SAFETY";
  return "STOP";
}

function chunk(model: string, responseId: string, content: unknown[], extra = {}) {
  return {
    candidates: [{ content: { parts: content, role: "model" }, index: 0, ...extra }],
    modelVersion: model,
    responseId,
  };
}

/** Everything a reply says, as Gemini chunks (text deltas, then whole function calls). */
function chunks(reply: Reply, model: string): Record<string, unknown>[] {
  const id = newId("", 20);
  const out: Record<string, unknown>[] = reply.textChunks.map((text) =>
    chunk(model, id, [{ text }]),
  );
  const calls = reply.toolCalls.map((c) => ({
    functionCall: { id: c.id, name: c.name, args: JSON.parse(c.argumentsJson) },
  }));
  // The last chunk carries the finish reason and the final usage.
  out.push(chunk(model, id, calls, { finishReason: finishReason(reply) }));
  return out.map((c, i) => ({ ...c, usageMetadata: usage(reply, i === out.length - 1) }));
}

export function geminiWireFor(
  api: Extract<MockLlmApi, "gemini" | "vertex">,
): Omit<Wire, "apiKey" | "authError"> {
  return {
    api,
    inspect,
    modelOf: geminiModelOf,
    streams: (url) => url.pathname.endsWith(":streamGenerateContent"),
    validate: (_headers: IncomingHttpHeaders, body) => {
      if (!Array.isArray(body.contents) || body.contents.length === 0)
        return "* GenerateContentRequest.contents: contents is not specified";
      return undefined;
    },
    sendError: sendGoogleError,
    sendModels: (res, modelIds) =>
      sendJson(res, 200, {
        models: modelIds.map((id) => ({
          name: `models/${id}`,
          displayName: id,
          inputTokenLimit: 1_048_576,
          outputTokenLimit: 65_536,
          supportedGenerationMethods: ["generateContent", "countTokens"],
        })),
      }),
    sendReply: (res, reply, _body, url) => {
      const model = geminiModelOf(url) ?? "gemini";
      const all = chunks(reply, model);
      const text = reply.text ? [{ text: reply.text }] : [];
      const last = all.at(-1)!;
      const candidate = (last.candidates as Record<string, unknown>[])[0]!;
      const calls = (candidate.content as { parts: unknown[] }).parts;
      sendJson(res, 200, {
        ...last,
        candidates: [{ ...candidate, content: { parts: [...text, ...calls], role: "model" } }],
      });
    },
    streamReply: async (res, reply, _body, url) => {
      const model = geminiModelOf(url) ?? "gemini";
      const pace = pacer(reply.delayMs);
      if (url.searchParams.get("alt") !== "sse") {
        // Without alt=sse the stream is one JSON array of the same chunks.
        sendJson(res, 200, chunks(reply, model));
        return;
      }
      const sse = new SseStream(res, {});
      for (const c of chunks(reply, model)) {
        await pace();
        sse.send(c);
      }
      sse.end();
    },
    openStream: (res) => new SseStream(res, {}),
  };
}

/** The Gemini API: a key in `x-goog-api-key` (or `?key=`). */
export const geminiWire: Wire = {
  ...geminiWireFor("gemini"),
  apiKey: (headers, url) => {
    const h = headers["x-goog-api-key"];
    return (Array.isArray(h) ? h[0] : h) ?? url.searchParams.get("key") ?? undefined;
  },
  authError: (presented) =>
    presented === undefined
      ? {
          status: 403,
          type: "PERMISSION_DENIED",
          message:
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        }
      : {
          status: 400,
          type: "INVALID_ARGUMENT",
          message: "API key not valid. Please pass a valid API key.",
        },
};
