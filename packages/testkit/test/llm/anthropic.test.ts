import Anthropic, {
  AuthenticationError,
  InternalServerError,
  RateLimitError,
} from "@anthropic-ai/sdk";
import { type MockLlm, startMockLlm } from "@lobu/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

let llm: MockLlm;
let client: Anthropic;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: "sk-ant-test" });
  client = new Anthropic({ baseURL: llm.url, apiKey: "sk-ant-test", maxRetries: 0 });
});
afterAll(() => llm.close());
beforeEach(() => llm.reset());

const user = (content: string) => ({
  model: "mock-model",
  max_tokens: 256,
  messages: [{ role: "user" as const, content }],
});

describe("Anthropic Messages API through @anthropic-ai/sdk", () => {
  it("streams text as several deltas in the documented event order", async () => {
    llm.script({ text: "The quick brown fox jumps over the lazy dog." });
    const events = await client.messages.create({ ...user("hi"), stream: true });
    const types: string[] = [];
    const deltas: string[] = [];
    for await (const event of events) {
      types.push(event.type);
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
        deltas.push(event.delta.text);
      }
    }
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join("")).toBe("The quick brown fox jumps over the lazy dog.");
    expect(types[0]).toBe("message_start");
    expect(types[1]).toBe("content_block_start");
    expect(types.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"]);
  });

  it("reassembles a streamed message with usage and stop reason", async () => {
    llm.script({ text: "hello world", chunks: ["hel", "lo ", "world"], stopReason: "max_tokens" });
    const stream = client.messages.stream(user("a fairly long prompt to count tokens for"));
    const texts: string[] = [];
    stream.on("text", (t) => texts.push(t));
    const message = await stream.finalMessage();
    expect(texts).toEqual(["hel", "lo ", "world"]);
    expect(message.content).toEqual([{ type: "text", text: "hello world" }]);
    expect(message.stop_reason).toBe("max_tokens");
    expect(message.id).toMatch(/^msg_/);
    expect(message.model).toBe("mock-model");
    expect(message.usage.input_tokens).toBeGreaterThan(5);
    expect(message.usage.output_tokens).toBeGreaterThan(0);
  });

  it("streams tool calls whose input JSON the SDK reassembles", async () => {
    const input = { command: "ls -la /tmp", options: { timeout: 30, tags: ["a", "b"] } };
    llm.script({
      text: "Let me look.",
      toolCalls: [
        { name: "bash", input },
        { name: "read", input: { path: "x" }, id: "toolu_fixed" },
      ],
    });
    const stream = client.messages.stream({
      ...user("list tmp"),
      tools: [
        { name: "bash", input_schema: { type: "object" } },
        { name: "read", input_schema: { type: "object" } },
      ],
    });
    const fragments: string[] = [];
    stream.on("inputJson", (partial) => fragments.push(partial));
    const message = await stream.finalMessage();
    expect(fragments.length).toBeGreaterThan(2);
    expect(message.stop_reason).toBe("tool_use");
    const [text, bash, read] = message.content;
    expect(text).toEqual({ type: "text", text: "Let me look." });
    expect(bash).toMatchObject({ type: "tool_use", name: "bash", input });
    expect(bash?.type === "tool_use" && bash.id).toMatch(/^toolu_/);
    expect(read).toMatchObject({
      type: "tool_use",
      id: "toolu_fixed",
      name: "read",
      input: { path: "x" },
    });
  });

  it("answers non-streaming requests with a complete message", async () => {
    llm.script({ toolCalls: [{ name: "bash", input: { command: "echo hi" } }] }, { text: "done" });
    const first = await client.messages.create(user("run it"));
    expect(first.stop_reason).toBe("tool_use");
    expect(first.content).toHaveLength(1);
    expect(first.content[0]).toMatchObject({
      type: "tool_use",
      name: "bash",
      input: { command: "echo hi" },
    });
    const second = await client.messages.create(user("and then?"));
    expect(second.content).toEqual([{ type: "text", text: "done" }]);
    expect(second.stop_reason).toBe("end_turn");
    expect(second.usage.input_tokens).toBeGreaterThan(0);
  });

  it("echoes the last user message when nothing is scripted", async () => {
    const message = await client.messages.create(user("ping me back"));
    expect(message.content).toEqual([{ type: "text", text: "echo: ping me back" }]);
  });

  it("rejects other API keys with AuthenticationError", async () => {
    const wrong = new Anthropic({ baseURL: llm.url, apiKey: "sk-ant-wrong", maxRetries: 0 });
    const error = await wrong.messages.create(user("hi")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as AuthenticationError).status).toBe(401);
    expect((error as AuthenticationError).error).toMatchObject({
      type: "error",
      error: { type: "authentication_error" },
    });
    expect(llm.requests[0]?.apiKey).toBe("sk-ant-wrong");
  });

  it("accepts the key as a bearer token", async () => {
    const bearer = new Anthropic({
      baseURL: llm.url,
      apiKey: null,
      authToken: "sk-ant-test",
      maxRetries: 0,
    });
    const message = await bearer.messages.create(user("via bearer"));
    expect(message.content).toEqual([{ type: "text", text: "echo: via bearer" }]);
    expect(llm.requests[0]?.apiKey).toBe("sk-ant-test");
  });

  it("surfaces scripted rate limits as RateLimitError with retry-after", async () => {
    llm.script({ error: { status: 429, retryAfterSec: 7 } });
    const error = await client.messages.create(user("hi")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).headers?.get("retry-after")).toBe("7");
    expect((error as RateLimitError).error).toMatchObject({ error: { type: "rate_limit_error" } });
  });

  it("surfaces overload as a 529 overloaded_error", async () => {
    llm.script({ error: { status: 529 } });
    const error = await client.messages.create(user("hi")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InternalServerError);
    expect((error as InternalServerError).status).toBe(529);
    expect((error as InternalServerError).error).toMatchObject({
      error: { type: "overloaded_error", message: "Overloaded" },
    });
  });

  it("lets the SDK's own retry recover from a rate limit", async () => {
    llm.script({ error: { status: 429, retryAfterSec: 0 } }, { text: "after retry" });
    const retrying = new Anthropic({ baseURL: llm.url, apiKey: "sk-ant-test", maxRetries: 1 });
    const message = await retrying.messages.create(user("hi"));
    expect(message.content).toEqual([{ type: "text", text: "after retry" }]);
    expect(llm.requests).toHaveLength(2);
  });

  it("validates requests like the real API", async () => {
    const post = (headers: Record<string, string>, body: unknown) =>
      fetch(`${llm.url}/v1/messages`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": "sk-ant-test", ...headers },
        body: JSON.stringify(body),
      });
    const noVersion = await post({}, user("hi"));
    expect(noVersion.status).toBe(400);
    expect(await noVersion.json()).toMatchObject({
      type: "error",
      error: { type: "invalid_request_error", message: "anthropic-version: header is required" },
    });
    const noMaxTokens = await post(
      { "anthropic-version": "2023-06-01" },
      { model: "m", messages: [] },
    );
    expect(await noMaxTokens.json()).toMatchObject({
      error: { message: "max_tokens: Field required" },
    });
    const error = await client.messages
      .create({ ...user("hi"), messages: [] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
  });

  it("serves the beta endpoint (?beta=true) and the models list", async () => {
    const message = await client.beta.messages.create(user("beta"));
    expect(message.content).toEqual([{ type: "text", text: "echo: beta" }]);
    expect(llm.requests[0]?.path).toBe("/v1/messages?beta=true");
    const models = [];
    for await (const model of client.models.list()) models.push(model.id);
    expect(models).toEqual(["mock-model", "mock-model-small"]);
    expect(llm.requests[1]).toMatchObject({ api: "anthropic", method: "GET", path: "/v1/models" });
  });

  it("works under a path prefix", async () => {
    const prefixed = new Anthropic({
      baseURL: `${llm.url}/anthropic`,
      apiKey: "sk-ant-test",
      maxRetries: 0,
    });
    const message = await prefixed.messages.stream(user("prefixed")).finalMessage();
    expect(message.content).toEqual([{ type: "text", text: "echo: prefixed" }]);
    expect(llm.requests[0]?.path).toBe("/anthropic/v1/messages");
  });
});
