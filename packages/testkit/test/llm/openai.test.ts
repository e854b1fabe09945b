import { type MockLlm, startMockLlm } from "@lobu/testkit";
import OpenAI, { AuthenticationError, InternalServerError, RateLimitError } from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

let llm: MockLlm;
let client: OpenAI;

beforeAll(async () => {
  llm = await startMockLlm({ apiKey: "sk-test" });
  client = new OpenAI({ baseURL: llm.openaiUrl, apiKey: "sk-test", maxRetries: 0 });
});
afterAll(() => llm.close());
beforeEach(() => llm.reset());

const user = (content: string) => ({
  model: "gpt-mock",
  messages: [{ role: "user" as const, content }],
});
const tools = [
  { type: "function" as const, function: { name: "bash", parameters: { type: "object" } } },
  { type: "function" as const, function: { name: "read", parameters: { type: "object" } } },
];

describe("OpenAI Chat Completions through the openai SDK", () => {
  it("streams text chunks, then finish_reason, usage and [DONE]", async () => {
    llm.script({ text: "The quick brown fox jumps over the lazy dog." });
    const stream = await client.chat.completions.create({
      ...user("hi"),
      stream: true,
      stream_options: { include_usage: true },
    });
    const deltas: string[] = [];
    const finishReasons: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk");
      const choice = chunk.choices[0];
      if (choice?.delta.content) deltas.push(choice.delta.content);
      if (choice) finishReasons.push(choice.finish_reason);
      if (chunk.usage) usage = chunk.usage;
    }
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join("")).toBe("The quick brown fox jumps over the lazy dog.");
    expect(finishReasons.at(-1)).toBe("stop");
    expect(finishReasons.slice(0, -1).every((r) => r === null)).toBe(true);
    expect(usage?.prompt_tokens).toBeGreaterThan(0);
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));
  });

  it("omits the usage chunk unless asked for", async () => {
    const stream = await client.chat.completions.create({ ...user("hi"), stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
  });

  it("streams tool calls whose arguments the SDK reassembles", async () => {
    const input = { command: "ls -la /tmp", options: { timeout: 30, tags: ["a", "b"] } };
    llm.script({
      toolCalls: [
        { name: "bash", input },
        { name: "read", input: { path: "x" }, id: "call_fixed" },
      ],
    });
    const stream = client.chat.completions.stream({ ...user("list tmp"), tools });
    const argDeltas: string[] = [];
    stream.on("tool_calls.function.arguments.delta", (e) => argDeltas.push(e.arguments_delta));
    const completion = await stream.finalChatCompletion();
    const choice = completion.choices[0];
    expect(argDeltas.length).toBeGreaterThan(2);
    expect(choice?.finish_reason).toBe("tool_calls");
    const [bash, read] = choice?.message.tool_calls ?? [];
    expect(bash?.type === "function" && bash.function.name).toBe("bash");
    expect(bash?.type === "function" && JSON.parse(bash.function.arguments)).toEqual(input);
    expect(bash?.id).toMatch(/^call_/);
    expect(read?.id).toBe("call_fixed");
    expect(read?.type === "function" && JSON.parse(read.function.arguments)).toEqual({ path: "x" });
  });

  it("answers non-streaming requests with a complete completion", async () => {
    llm.script(
      { text: "checking", toolCalls: [{ name: "bash", input: { command: "pwd" } }] },
      { text: "done" },
    );
    const first = await client.chat.completions.create({ ...user("run"), tools });
    expect(first.object).toBe("chat.completion");
    expect(first.choices[0]?.finish_reason).toBe("tool_calls");
    expect(first.choices[0]?.message.content).toBe("checking");
    const call = first.choices[0]?.message.tool_calls?.[0];
    expect(call?.type === "function" && JSON.parse(call.function.arguments)).toEqual({
      command: "pwd",
    });
    const second = await client.chat.completions.create(user("next"));
    expect(second.choices[0]?.message).toMatchObject({ role: "assistant", content: "done" });
    expect(second.choices[0]?.finish_reason).toBe("stop");
    expect(second.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it("translates Anthropic stop reasons", async () => {
    llm.script({ text: "cut", stopReason: "max_tokens" });
    const completion = await client.chat.completions.create(user("hi"));
    expect(completion.choices[0]?.finish_reason).toBe("length");
  });

  it("rejects other API keys with AuthenticationError", async () => {
    const wrong = new OpenAI({ baseURL: llm.openaiUrl, apiKey: "sk-wrong", maxRetries: 0 });
    const error = await wrong.chat.completions.create(user("hi")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect((error as AuthenticationError).code).toBe("invalid_api_key");
    expect((error as AuthenticationError).type).toBe("invalid_request_error");
  });

  it("surfaces scripted rate limits as RateLimitError with retry-after", async () => {
    llm.script({ error: { status: 429, message: "slow down", retryAfterSec: 3 } });
    const error = await client.chat.completions.create(user("hi")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).message).toContain("slow down");
    expect((error as RateLimitError).code).toBe("rate_limit_exceeded");
    expect((error as RateLimitError).headers.get("retry-after")).toBe("3");
  });

  it("surfaces server errors as InternalServerError in OpenAI's error shape", async () => {
    llm.script({ error: { status: 503, message: "down for maintenance" } });
    const error = await client.chat.completions
      .create({ ...user("hi"), stream: true })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InternalServerError);
    expect((error as InternalServerError).status).toBe(503);
    expect((error as InternalServerError).error).toMatchObject({
      message: "down for maintenance",
      type: "server_error",
    });
  });

  it("lists models", async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id)).toEqual(["mock-model", "mock-model-small"]);
    expect(page.data[0]?.object).toBe("model");
  });

  it("works under a path prefix, and without /v1 in the base URL", async () => {
    for (const baseURL of [`${llm.url}/openai/v1`, `${llm.url}/openai`]) {
      const prefixed = new OpenAI({ baseURL, apiKey: "sk-test", maxRetries: 0 });
      const completion = await prefixed.chat.completions
        .stream(user("prefixed"))
        .finalChatCompletion();
      expect(completion.choices[0]?.message.content).toBe("echo: prefixed");
    }
    expect(llm.requests.map((r) => r.path)).toEqual([
      "/openai/v1/chat/completions",
      "/openai/chat/completions",
    ]);
  });
});
