import { count, EventUsage } from "./readers.ts";
import { dataIds, type ProviderWire } from "./types.ts";

/** OpenAI(-compatible) Chat Completions (`Authorization: Bearer`). */
export const openaiWire: ProviderWire = {
  api: "openai-completions",
  routes: [
    {
      method: "POST",
      path: /^\/chat\/completions$/,
      label: "POST /chat/completions",
      generates: true,
    },
    { method: "GET", path: /^\/models(\/[A-Za-z0-9._:/-]+)?$/, label: "GET /models" },
  ],
  placeholderHeaders: ["authorization", "x-api-key"],
  credentialHeaders: ["authorization", "x-api-key"],
  modelOf: (_path, body) => (typeof body.model === "string" ? body.model : undefined),
  outputFields: ["max_completion_tokens", "max_tokens"],
  choicesField: "n",
  listing: { path: "/models", ids: dataIds },
  async authenticate(req, key) {
    req.headers.set("authorization", `Bearer ${key}`);
  },
  usage: (contentType) =>
    new EventUsage(contentType, (body, usage) => {
      const u = body.usage as Record<string, unknown> | undefined | null;
      if (!u) return false;
      if (typeof u.prompt_tokens === "number") {
        usage.inputTokens = u.prompt_tokens;
        const details = u.prompt_tokens_details as Record<string, unknown> | undefined | null;
        usage.cacheReadTokens = Math.min(count(details?.cached_tokens), u.prompt_tokens);
      }
      if (typeof u.completion_tokens === "number") usage.outputTokens = u.completion_tokens;
      return false;
    }),
  errorBody: (_status, kind, message) =>
    JSON.stringify({ error: { message, type: kind, code: kind } }),
};
