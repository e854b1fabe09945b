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
}

/**
 * Register one model with pi and return it. Its costs are zero: usage is metered
 * by the gateway from the provider's responses, never by the worker.
 */
export function registerModel(runtime: ModelRuntime, m: ModelRegistration): PiModel {
  runtime.registerProvider(m.providerId, {
    baseUrl: m.baseUrl,
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
        // What the provider behind the relay accepts (pi cannot tell from the relay's URL).
        ...(m.compat ? { compat: m.compat as PiModel["compat"] } : {}),
      },
    ],
  });
  const model = runtime.getModel(m.providerId, m.id);
  if (!model) throw new Error(`model ${m.id} could not be registered`);
  return model;
}
