import { anthropicWire } from "./anthropic.ts";
import { azureWire } from "./azure.ts";
import { bedrockWire } from "./bedrock.ts";
import { geminiWire } from "./gemini.ts";
import { openaiWire } from "./openai.ts";
import { responsesWire } from "./responses.ts";
import type { ProviderWire } from "./types.ts";
import { vertexWire } from "./vertex.ts";

export type {
  ProviderWire,
  UpstreamRequest,
  UsageReader,
  WireListing,
  WireProvider,
  WireRoute,
} from "./types.ts";

/** Every wire format the relay speaks, by provider type (lobu.toml `[providers.<id>] type`). */
export const WIRES = {
  anthropic: anthropicWire,
  openai: openaiWire,
  "openai-responses": responsesWire,
  gemini: geminiWire,
  vertex: vertexWire,
  bedrock: bedrockWire,
  azure: azureWire,
} as const satisfies Record<string, ProviderWire>;

export type WireType = keyof typeof WIRES;
