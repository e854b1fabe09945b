import type { ModelRuntime } from "@earendil-works/pi-coding-agent";
import type { ModelSpec } from "@lobu/core";

export type PiModel = NonNullable<ReturnType<ModelRuntime["getModel"]>>;

export interface ModelRegistration
  extends Pick<
    ModelSpec,
    "api" | "id" | "apiKey" | "contextWindow" | "maxTokens" | "images" | "compat"
  > {
  /** pi provider id to register the model under. */
  providerId: string;
  /** Where pi sends the model's requests. */
  baseUrl: string;
  headers?: Record<string, string>;
  /**
   * Headers of the model entry: pi reads these anew for every request, so a caller
   * may change the object's contents between turns without registering again.
   */
  modelHeaders?: Record<string, string>;
}

/**
 * What pi appends to a provider's base URL differs per API: for these it
 * expects the version path in the base URL. The relay is reached at the
 * provider's own paths below `endpoint`.
 */
const BASE_PATH: Partial<Record<ModelSpec["api"], string>> = {
  "google-generative-ai": "/v1beta",
  "azure-openai-responses": "/openai/v1",
};

/**
 * Register one model with pi and return it. Its costs are zero: usage is metered
 * by the gateway from the provider's responses, never by the worker.
 */
export function registerModel(runtime: ModelRuntime, m: ModelRegistration): PiModel {
  if (m.api === "bedrock-converse-stream") {
    // pi's Bedrock client speaks HTTP/2 unless told otherwise; the relay is HTTP/1.1.
    process.env.AWS_BEDROCK_FORCE_HTTP1 = "1";
  }
  runtime.registerProvider(m.providerId, {
    baseUrl: `${m.baseUrl}${BASE_PATH[m.api] ?? ""}`,
    apiKey: m.apiKey,
    api: m.api,
    ...(m.headers ? { headers: m.headers } : {}),
    models: [
      {
        id: m.id,
        name: m.id,
        reasoning: false,
        // Images only when the gateway says the model takes them ([files] images_to_model).
        input: m.images ? ["text", "image"] : ["text"],
        cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
        contextWindow: m.contextWindow,
        maxTokens: m.maxTokens,
        ...(m.modelHeaders ? { headers: m.modelHeaders } : {}),
        // What the provider behind the relay accepts (pi cannot tell from the relay's URL).
        ...(m.compat ? { compat: m.compat as PiModel["compat"] } : {}),
      },
    ],
  });
  const model = runtime.getModel(m.providerId, m.id);
  if (!model) throw new Error(`model ${m.id} could not be registered`);
  return model;
}
