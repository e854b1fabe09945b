import { count, EventUsage, isRecord } from "./readers.ts";
import { dataIds, type ProviderWire, type UsageReader } from "./types.ts";

/**
 * The OpenAI Responses API (`POST /responses`), which newer OpenAI models
 * (and Azure OpenAI through pi) use. Usage arrives in `response.completed`.
 */
export function responsesUsage(contentType: string): UsageReader {
  return new EventUsage(contentType, (body, usage) => {
    const done =
      body.type === "response.completed" ||
      body.type === "response.incomplete" ||
      body.type === "response.failed";
    // Streamed: the usage is on the final event's response; non-streamed: on the body.
    const response = isRecord(body.response) ? body.response : body;
    const u = response.usage;
    if (isRecord(u) && (done || body.type === undefined)) {
      usage.inputTokens = count(u.input_tokens);
      const details = isRecord(u.input_tokens_details) ? u.input_tokens_details : {};
      usage.cacheReadTokens = Math.min(count(details.cached_tokens), usage.inputTokens);
      usage.outputTokens = count(u.output_tokens);
    }
    return done;
  });
}

/** What the Responses API relays beyond a generating call: reading back nothing (store is off). */
export const responsesWire: ProviderWire = {
  api: "openai-responses",
  routes: [
    { method: "POST", path: /^\/responses$/, label: "POST /responses", generates: true },
    { method: "GET", path: /^\/models(\/[A-Za-z0-9._:/-]+)?$/, label: "GET /models" },
  ],
  placeholderHeaders: ["authorization"],
  credentialHeaders: ["authorization", "x-api-key"],
  modelOf: (_path, body) => (typeof body.model === "string" ? body.model : undefined),
  outputFields: ["max_output_tokens"],
  listing: { path: "/models", ids: dataIds },
  async authenticate(req, key) {
    req.headers.set("authorization", `Bearer ${key}`);
  },
  usage: responsesUsage,
  errorBody: (_status, kind, message) =>
    JSON.stringify({ error: { message, type: kind, code: kind, param: null } }),
};
