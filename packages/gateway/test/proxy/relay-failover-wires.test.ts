import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AssistantMessage } from "@earendil-works/pi-ai";
import { streamSimple } from "@earendil-works/pi-ai/compat";
import { ModelRuntime } from "@earendil-works/pi-coding-agent";
import { type ModelSpec, parseConfig } from "@lobu/core";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import { registerModel } from "@lobu/worker";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ProviderRegistry } from "../../src/providers/registry.ts";
import type { FailoverEvent, UsageRecord } from "../../src/providers/relay.ts";
import type { RunningTurn } from "../../src/runtime/active-turns.ts";
import { agentFailoverTargets } from "../../src/runtime/failover.ts";
import { createWorld, type World } from "./fixture.ts";
import { relayPlaceholders, turnRelay } from "./relay-fixture.ts";

/**
 * Failover on the wires that name the model in the path (Gemini, Bedrock):
 * the relay sends the same call to the fallback provider of the same type,
 * with the fallback's model in the path and the fallback's own credential
 * (a Gemini key header, a SigV4 signature for the fallback's region), driven
 * by pi's provider layer as the worker registers it.
 */

const KEY_A = "gemini-key-of-primary-000000000001";
const KEY_B = "gemini-key-of-fallback-00000000002";
const AWS_A = { accessKeyId: "AKIAPRIMARY000000001", secretAccessKey: "primary/secret/0001" };
const AWS_B = { accessKeyId: "AKIAFALLBACK00000002", secretAccessKey: "fallback/secret/0002" };
const BEDROCK_A = "anthropic.claude-haiku-4-5-20251001-v1:0";
const BEDROCK_B = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0";

let w: World;
let primary: MockLlm;
let fallback: MockLlm;
let port: number;
let tmp: string;
const usage: UsageRecord[] = [];
const failovers: FailoverEvent[] = [];
const placeholder: Record<string, string> = {};

const TURN: RunningTurn = {
  turnId: "msg_1.1",
  messageId: "msg_1",
  agentId: "helper",
  userKey: "api::alice",
  origin: { platform: "api", workspace: "", channelId: "c", userId: "alice", isDirect: true },
  model: { provider: "gem-a", id: "gemini-2.5-flash" },
};

beforeAll(async () => {
  w = await createWorld();
  primary = await startMockLlm({ apiKey: KEY_A, aws: [AWS_A] });
  fallback = await startMockLlm({ apiKey: KEY_B, aws: [AWS_B] });
  tmp = await mkdtemp(join(tmpdir(), "lobu-relay-failover-wires-"));
  const config = parseConfig(`
[providers.gem-a]
type = "gemini"
base_url = "${primary.url}"
[providers.gem-b]
type = "gemini"
base_url = "${fallback.url}"
[providers.aws-a]
type = "bedrock"
base_url = "${primary.url}"
region = "us-east-1"
[providers.aws-b]
type = "bedrock"
base_url = "${fallback.url}"
region = "eu-west-1"

[agents.helper]
provider = "gem-a"
model = "gemini-2.5-flash"
fallback = ["aws-b/${BEDROCK_B}", "gem-b/gemini-2.5-pro"]
`);
  const providers = new ProviderRegistry(config, {});
  const secret: Record<string, string> = {
    "gem-a": KEY_A,
    "gem-b": KEY_B,
    "aws-a": `${AWS_A.accessKeyId}:${AWS_A.secretAccessKey}`,
    "aws-b": `${AWS_B.accessKeyId}:${AWS_B.secretAccessKey}`,
  };
  Object.assign(placeholder, await relayPlaceholders(w, secret, TURN));
  const handler = await turnRelay(w, {
    providers,
    turn: TURN,
    models: ["gemini-2.5-flash", BEDROCK_A],
    recordUsage: (u) => usage.push(u),
    failoverTargets: agentFailoverTargets({ config, providers, secrets: w.secrets }),
    onFailover: (e) => failovers.push(e),
  });
  ({ port } = await w.startProxy({ internal: handler }));
});
afterAll(async () => {
  await primary.close();
  await fallback.close();
  await w.close();
  await rm(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  primary.reset();
  fallback.reset();
  usage.length = 0;
  failovers.length = 0;
});

async function turn(id: string, api: ModelSpec["api"], model: string): Promise<AssistantMessage> {
  const runtime = await ModelRuntime.create({
    authPath: join(tmp, `${id}-auth.json`),
    modelsPath: null,
  });
  const m = registerModel(runtime, {
    providerId: `lobu-${id}`,
    api,
    id: model,
    apiKey: placeholder[id]!,
    contextWindow: 100_000,
    maxTokens: 1000,
    baseUrl: `http://127.0.0.1:${port}/__lobu/llm/${id}`,
  });
  const stream = streamSimple(
    m,
    { messages: [{ role: "user", content: "hello", timestamp: Date.now() }] },
    { apiKey: placeholder[id]!, maxRetries: 0 } as never,
  );
  for await (const _ of stream) {
    // drain
  }
  return stream.result();
}

describe("failover on path-model wires", () => {
  it("moves a rate-limited Gemini call to the Gemini fallback: its model in the path, its own key; skips the Bedrock one", async () => {
    primary.script({ error: { status: 429, message: "Resource has been exhausted" } });
    fallback.script({ text: "from the fallback" });
    const answer = await turn("gem-a", "google-generative-ai", "gemini-2.5-flash");
    expect(answer.errorMessage).toBeUndefined();
    expect(answer.content.find((c) => c.type === "text")).toMatchObject({
      text: "from the fallback",
    });
    expect(primary.requests).toHaveLength(1);
    expect(fallback.requests).toHaveLength(1);
    const moved = fallback.requests[0]!;
    expect(moved.path).toMatch(/^\/v1beta\/models\/gemini-2\.5-pro:streamGenerateContent/);
    expect(moved.model).toBe("gemini-2.5-pro");
    expect(moved.apiKey).toBe(KEY_B);
    // A fallback of another wire (Bedrock) is not tried: the call is Gemini's.
    expect(failovers).toEqual([
      expect.objectContaining({
        from: { provider: "gem-a", model: "gemini-2.5-flash" },
        to: { provider: "gem-b", model: "gemini-2.5-pro" },
        status: 429,
      }),
    ]);
    expect(usage.at(-1)).toMatchObject({ provider: "gem-b", model: "gemini-2.5-pro" });
  });
});

describe("failover between Bedrock regions", () => {
  it("re-signs the moved call with the fallback's credentials for its region and model path", async () => {
    primary.script({ error: { status: 503, message: "Service unavailable" } });
    fallback.script({ text: "from eu-west-1" });
    const answer = await turn("aws-a", "bedrock-converse-stream", BEDROCK_A);
    expect(answer.errorMessage).toBeUndefined();
    expect(fallback.requests).toHaveLength(1);
    const moved = fallback.requests[0]!;
    expect(decodeURIComponent(moved.path)).toBe(`/model/${BEDROCK_B}/converse-stream`);
    // Accepted by the emulator only with a valid SigV4 signature by the fallback's key.
    expect(moved.apiKey).toBe(AWS_B.accessKeyId);
    expect(moved.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIAFALLBACK00000002\/\d{8}\/eu-west-1\/bedrock\//,
    );
    expect(failovers.map((f) => f.to)).toEqual([{ provider: "aws-b", model: BEDROCK_B }]);
  });
});
