import { parseConfig } from "@lobu/core";
import { EventStreamCodec } from "@smithy/core/event-streams";
import { fromUtf8, toUtf8 } from "@smithy/core/serde";
import { describe, expect, it } from "vitest";
import { ProviderRegistry } from "../../src/providers/registry.ts";
import { UsageMeter } from "../../src/providers/usage.ts";
import { parseAwsCredentials } from "../../src/providers/wire/bedrock.ts";
import { parseServiceAccountKey } from "../../src/providers/wire/vertex.ts";

/**
 * Usage read from each provider's own answer format (Gemini usageMetadata,
 * Bedrock's event-stream `metadata`, the Responses API's `response.completed`),
 * however the bytes are cut; and the provider registry's per-type defaults.
 */

const enc = new TextEncoder();
const codec = new EventStreamCodec(toUtf8, fromUtf8);

function frame(eventType: string, payload: unknown, messageType = "event"): Uint8Array {
  return codec.encode({
    headers: {
      ":event-type": { type: "string", value: eventType },
      ":content-type": { type: "string", value: "application/json" },
      ":message-type": { type: "string", value: messageType },
    },
    body: fromUtf8(JSON.stringify(payload)),
  });
}

/** Feed bytes in pieces of `size` (1: every byte alone). */
function feed(meter: UsageMeter, bytes: Uint8Array, size: number) {
  for (let i = 0; i < bytes.length; i += size) meter.push(bytes.subarray(i, i + size));
  return meter;
}

describe("usage per wire format", () => {
  it("Gemini: the last chunk's usageMetadata, thinking as output, cached as part of the input", () => {
    const chunk = (usage: object, finish?: string) =>
      `data: ${JSON.stringify({
        candidates: [
          { content: { parts: [{ text: "x" }] }, ...(finish ? { finishReason: finish } : {}) },
        ],
        usageMetadata: usage,
      })}\r\n\r\n`;
    const sse =
      chunk({ promptTokenCount: 120 }) +
      chunk(
        {
          promptTokenCount: 120,
          cachedContentTokenCount: 100,
          toolUsePromptTokenCount: 5,
          candidatesTokenCount: 30,
          thoughtsTokenCount: 12,
        },
        "STOP",
      );
    const meter = feed(new UsageMeter("gemini", "text/event-stream"), enc.encode(sse), 7);
    expect(meter.ended).toBe(true);
    expect(meter.finish()).toEqual({
      inputTokens: 125,
      outputTokens: 42,
      cacheReadTokens: 100,
      cacheWriteTokens: 0,
    });
    // Without alt=sse the same chunks come as one JSON array.
    const array = JSON.stringify([
      { usageMetadata: { promptTokenCount: 9 } },
      { usageMetadata: { promptTokenCount: 9, candidatesTokenCount: 4 } },
    ]);
    expect(
      feed(new UsageMeter("vertex", "application/json"), enc.encode(array), 5).finish(),
    ).toMatchObject({
      inputTokens: 9,
      outputTokens: 4,
    });
  });

  it("Bedrock: the metadata event, however the frames are cut, cache reads and writes included", () => {
    const bytes = Buffer.concat([
      frame("messageStart", { role: "assistant" }),
      frame("contentBlockDelta", { contentBlockIndex: 0, delta: { text: "hi" } }),
      frame("messageStop", { stopReason: "end_turn" }),
      frame("metadata", {
        usage: {
          inputTokens: 10,
          outputTokens: 7,
          cacheReadInputTokens: 50,
          cacheWriteInputTokens: 20,
        },
        metrics: { latencyMs: 3 },
      }),
    ]);
    for (const size of [1, 13, bytes.length]) {
      const meter = feed(
        new UsageMeter("bedrock", "application/vnd.amazon.eventstream"),
        bytes,
        size,
      );
      expect(meter.ended).toBe(true);
      expect(meter.finish()).toEqual({
        inputTokens: 80,
        outputTokens: 7,
        cacheReadTokens: 50,
        cacheWriteTokens: 20,
      });
    }
  });

  it("Bedrock: an exception event ends the stream; a corrupt frame is skipped, not trusted", () => {
    const corrupt = frame("metadata", { usage: { inputTokens: 1, outputTokens: 1 } });
    corrupt[corrupt.length - 5]! ^= 0xff; // breaks the message checksum
    const bytes = Buffer.concat([
      corrupt,
      frame("throttlingException", { message: "slow down" }, "exception"),
    ]);
    const meter = feed(new UsageMeter("bedrock", "application/vnd.amazon.eventstream"), bytes, 9);
    expect(meter.ended).toBe(true);
    expect(meter.finish()).toMatchObject({ inputTokens: 0, outputTokens: 0 });
    // A frame claiming an absurd length stops reading rather than buffering forever.
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setUint32(0, 0x7fffffff);
    const stopped = feed(new UsageMeter("bedrock", "application/vnd.amazon.eventstream"), huge, 8);
    expect(stopped.finish()).toMatchObject({ inputTokens: 0 });
    // /converse answers JSON.
    const json = JSON.stringify({ usage: { inputTokens: 3, outputTokens: 2 } });
    expect(
      feed(new UsageMeter("bedrock", "application/json"), enc.encode(json), 4).finish(),
    ).toMatchObject({
      inputTokens: 3,
      outputTokens: 2,
    });
  });

  it("Responses API and Azure: response.completed, not the in-progress events", () => {
    const sse = [
      { type: "response.created", response: { usage: null } },
      { type: "response.output_text.delta", delta: "hi", usage: { input_tokens: 1 } },
      {
        type: "response.completed",
        response: {
          usage: {
            input_tokens: 40,
            input_tokens_details: { cached_tokens: 32 },
            output_tokens: 6,
          },
        },
      },
    ]
      .map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`)
      .join("");
    for (const type of ["openai-responses", "azure"] as const) {
      const meter = feed(
        new UsageMeter(type, "text/event-stream; charset=utf-8"),
        enc.encode(sse),
        11,
      );
      expect(meter.ended).toBe(true);
      expect(meter.finish()).toEqual({
        inputTokens: 40,
        outputTokens: 6,
        cacheReadTokens: 32,
        cacheWriteTokens: 0,
      });
    }
  });
});

describe("provider registry per type", () => {
  it("derives Vertex AI and Bedrock endpoints from the region, and needs base_url for Azure", () => {
    const reg = new ProviderRegistry(
      parseConfig(`
[providers.vertex]
type = "vertex"
region = "europe-west4"
[providers.vertex-global]
type = "vertex"
[providers.bedrock]
type = "bedrock"
region = "eu-central-1"
`),
      { GEMINI_API_KEY: "k" },
    );
    expect(reg.get("vertex")).toMatchObject({
      baseUrl: "https://europe-west4-aiplatform.googleapis.com",
      region: "europe-west4",
    });
    expect(reg.get("vertex-global")?.baseUrl).toBe("https://aiplatform.googleapis.com");
    expect(reg.get("bedrock")?.baseUrl).toBe("https://bedrock-runtime.eu-central-1.amazonaws.com");
    expect(reg.get("gemini")).toMatchObject({
      type: "gemini",
      baseUrl: "https://generativelanguage.googleapis.com",
      keyEnv: "GEMINI_API_KEY",
    });
    expect(
      () => new ProviderRegistry(parseConfig(`[providers.azure]\ntype = "azure"\n`), {}),
    ).toThrow(/needs base_url/);
    expect(() => parseConfig(`[providers.b]\ntype = "bedrock"\nregion = "../evil"\n`)).toThrow(
      /region/,
    );
  });

  it("reads provider keys in the shapes the docs give, and says what is wrong otherwise", () => {
    expect(parseAwsCredentials("AKIA1:se/cr:et")).toEqual({
      accessKeyId: "AKIA1",
      secretAccessKey: "se/cr:et",
    });
    expect(
      parseAwsCredentials('{"accessKeyId":"AKIA2","secretAccessKey":"s","sessionToken":"t"}'),
    ).toEqual({ accessKeyId: "AKIA2", secretAccessKey: "s", sessionToken: "t" });
    expect(() => parseAwsCredentials("just-a-key")).toThrow(/ACCESS_KEY_ID:SECRET_ACCESS_KEY/);
    expect(() => parseServiceAccountKey('{"type":"authorized_user"}')).toThrow(
      /service-account JSON key/,
    );
    expect(() => parseServiceAccountKey("AIza-not-json")).toThrow(/not a service-account JSON key/);
  });
});
