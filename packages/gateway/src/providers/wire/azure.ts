import { responsesUsage } from "./responses.ts";
import type { ProviderWire } from "./types.ts";

/**
 * Azure OpenAI: the Responses API of a resource (`/openai/v1/responses?api-version=…`,
 * where `model` names the deployment), with the key in an `api-key` header.
 */

export const azureWire: ProviderWire = {
  api: "azure-openai-responses",
  routes: [
    {
      method: "POST",
      path: /^\/openai(\/v1)?\/responses$/,
      label: "POST /openai/v1/responses",
      generates: true,
    },
    { method: "GET", path: /^\/openai(\/v1)?\/models$/, label: "GET /openai/v1/models" },
  ],
  placeholderHeaders: ["api-key", "authorization"],
  credentialHeaders: ["api-key", "authorization"],
  // The deployment is the model.
  modelOf: (_path, body) => (typeof body.model === "string" ? body.model : undefined),
  outputFields: ["max_output_tokens"],
  async authenticate(req, key) {
    req.headers.set("api-key", key);
  },
  usage: (contentType) => responsesUsage(contentType),
  errorBody: (_status, kind, message) => JSON.stringify({ error: { code: kind, message } }),
};
