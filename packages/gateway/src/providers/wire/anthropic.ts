import { count, EventUsage } from "./readers.ts";
import { dataIds, type ProviderWire } from "./types.ts";

/** Anthropic Messages (`x-api-key`). */
export const anthropicWire: ProviderWire = {
  api: "anthropic-messages",
  routes: [
    { method: "POST", path: /^\/v1\/messages$/, label: "POST /v1/messages", generates: true },
    {
      method: "POST",
      path: /^\/v1\/messages\/count_tokens$/,
      label: "POST /v1/messages/count_tokens",
    },
    { method: "GET", path: /^\/v1\/models(\/[A-Za-z0-9._:-]+)?$/, label: "GET /v1/models" },
  ],
  placeholderHeaders: ["x-api-key", "authorization"],
  credentialHeaders: ["x-api-key", "authorization"],
  modelOf: (_path, body) => (typeof body.model === "string" ? body.model : undefined),
  outputFields: ["max_tokens"],
  listing: { path: "/v1/models", headers: { "anthropic-version": "2023-06-01" }, ids: dataIds },
  async authenticate(req, key) {
    req.headers.set("x-api-key", key);
  },
  usage: (contentType) =>
    new EventUsage(contentType, (body, usage) => {
      const message = body.message as { usage?: Record<string, unknown> } | undefined;
      const u = (body.usage ?? message?.usage) as Record<string, unknown> | undefined;
      if (u) {
        // A later event (message_delta) may repeat some counts and omit others: keep what it omits.
        if (typeof u.cache_read_input_tokens === "number")
          usage.cacheReadTokens = count(u.cache_read_input_tokens);
        if (typeof u.cache_creation_input_tokens === "number")
          usage.cacheWriteTokens = count(u.cache_creation_input_tokens);
        // Anthropic's input_tokens excludes cached input; the total includes it.
        if (typeof u.input_tokens === "number")
          usage.inputTokens = u.input_tokens + usage.cacheReadTokens + usage.cacheWriteTokens;
        if (typeof u.output_tokens === "number") usage.outputTokens = u.output_tokens;
      }
      return body.type === "message_stop";
    }),
  errorBody: (_status, kind, message) =>
    JSON.stringify({ type: "error", error: { type: kind, message } }),
};
