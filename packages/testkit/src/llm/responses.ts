import type { ServerResponse } from "node:http";
import { pacer, SseStream, sendJson } from "./http.ts";
import { newId } from "./ids.ts";
import { defaultErrorMessage, type Reply } from "./reply.ts";
import { bearerToken, isRecord, type MockError, retryAfter, textOf, type Wire } from "./wire.ts";

/**
 * The OpenAI Responses API (`POST /v1/responses`), and Azure OpenAI's
 * (`POST /openai/v1/responses?api-version=…` with an `api-key` header, where
 * `model` names a deployment). Streams are typed server-sent events ending in
 * `response.completed`, which carries the usage.
 */

function sendError(res: ServerResponse, error: MockError): void {
  sendJson(
    res,
    error.status,
    {
      error: {
        message: error.message ?? defaultErrorMessage(error.status),
        type:
          error.type ?? (error.status === 429 ? "rate_limit_exceeded" : "invalid_request_error"),
        param: null,
        code: error.status === 401 ? "invalid_api_key" : null,
      },
    },
    { "x-request-id": newId("req_", 32), ...retryAfter(error) },
  );
}

function inspect(body: Record<string, unknown>) {
  const input =
    typeof body.input === "string" ? [{ role: "user", content: body.input }] : body.input;
  const items = Array.isArray(input) ? input.filter(isRecord) : [];
  let lastUserText = "";
  let lastAssistant = -1;
  items.forEach((item, i) => {
    if (item.role === "assistant" || item.type === "function_call") lastAssistant = i;
    if (item.role !== "user") return;
    const text =
      typeof item.content === "string"
        ? item.content
        : Array.isArray(item.content)
          ? item.content
              .filter(isRecord)
              .filter((p) => typeof p.text === "string")
              .map((p) => p.text as string)
              .join("\n")
          : "";
    if (text) lastUserText = text;
  });
  const toolResults = items
    .slice(lastAssistant + 1)
    .filter((item) => item.type === "function_call_output")
    .map((item) => ({ id: String(item.call_id), content: textOf(item.output), isError: false }));
  return { lastUserText, toolResults };
}

function usage(reply: Reply) {
  return {
    input_tokens: reply.inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: reply.outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: reply.inputTokens + reply.outputTokens,
  };
}

/** The reply's output items, as they stand when complete. */
function outputItems(reply: Reply) {
  return [
    ...(reply.text
      ? [
          {
            id: newId("msg_", 40),
            type: "message",
            status: "completed",
            role: "assistant",
            content: [{ type: "output_text", text: reply.text, annotations: [] }],
          },
        ]
      : []),
    ...reply.toolCalls.map((c) => ({
      id: newId("fc_", 40),
      type: "function_call",
      status: "completed",
      call_id: c.id,
      name: c.name,
      arguments: c.argumentsJson,
    })),
  ];
}

function responseObject(body: Record<string, unknown>, reply: Reply, done: boolean, id: string) {
  const truncated = reply.stopReason === "max_tokens" || reply.stopReason === "length";
  return {
    id,
    object: "response",
    created_at: Math.floor(Date.now() / 1000),
    status: done ? (truncated ? "incomplete" : "completed") : "in_progress",
    ...(done && truncated ? { incomplete_details: { reason: "max_output_tokens" } } : {}),
    model: String(body.model),
    output: done ? outputItems(reply) : [],
    usage: done ? usage(reply) : null,
  };
}

function responsesWireWith(
  api: "responses" | "azure",
  apiKey: Wire["apiKey"],
  extraValidate?: (url: URL) => string | undefined,
): Wire {
  return {
    api,
    apiKey,
    authError: (presented) => ({
      status: 401,
      message:
        api === "azure"
          ? "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
          : presented === undefined
            ? "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            : "Incorrect API key provided.",
    }),
    inspect,
    validate: (_headers, body, url) => {
      const problem = extraValidate?.(url);
      if (problem) return problem;
      if (typeof body.model !== "string") return "Missing required parameter: 'model'.";
      if (body.input === undefined) return "Missing required parameter: 'input'.";
      return undefined;
    },
    sendError,
    sendModels: (res, modelIds) =>
      sendJson(res, 200, {
        object: "list",
        data: modelIds.map((id) => ({
          id,
          object: "model",
          created: 1735689600,
          owned_by: "lobu-mock",
        })),
      }),
    sendReply: (res, reply, body) =>
      sendJson(res, 200, responseObject(body, reply, true, newId("resp_", 40))),
    streamReply: async (res, reply, body) => {
      const sse = new SseStream(res, { "x-request-id": newId("req_", 32) });
      const pace = pacer(reply.delayMs);
      const id = newId("resp_", 40);
      let seq = 0;
      const send = (type: string, data: Record<string, unknown>) =>
        sse.send({ type, sequence_number: seq++, ...data }, type);
      send("response.created", { response: responseObject(body, reply, false, id) });
      send("response.in_progress", { response: responseObject(body, reply, false, id) });
      const items = outputItems(reply);
      for (const [output_index, item] of items.entries()) {
        if (item.type === "message") {
          send("response.output_item.added", {
            output_index,
            item: { ...item, status: "in_progress", content: [] },
          });
          const part = { type: "output_text", text: "", annotations: [] };
          send("response.content_part.added", {
            item_id: item.id,
            output_index,
            content_index: 0,
            part,
          });
          for (const delta of reply.textChunks) {
            await pace();
            send("response.output_text.delta", {
              item_id: item.id,
              output_index,
              content_index: 0,
              delta,
              logprobs: [],
            });
          }
          send("response.output_text.done", {
            item_id: item.id,
            output_index,
            content_index: 0,
            text: reply.text,
            logprobs: [],
          });
          send("response.content_part.done", {
            item_id: item.id,
            output_index,
            content_index: 0,
            part: { ...part, text: reply.text },
          });
        } else {
          const call = reply.toolCalls.find((c) => "call_id" in item && c.id === item.call_id)!;
          send("response.output_item.added", {
            output_index,
            item: { ...item, status: "in_progress", arguments: "" },
          });
          for (const delta of call.fragments) {
            await pace();
            send("response.function_call_arguments.delta", {
              item_id: item.id,
              output_index,
              delta,
            });
          }
          send("response.function_call_arguments.done", {
            item_id: item.id,
            output_index,
            arguments: call.argumentsJson,
          });
        }
        send("response.output_item.done", { output_index, item });
      }
      const final = responseObject(body, reply, true, id);
      send(final.status === "incomplete" ? "response.incomplete" : "response.completed", {
        response: final,
      });
      sse.end();
    },
    openStream: (res) => new SseStream(res, {}),
  };
}

/** OpenAI's Responses API: `Authorization: Bearer <key>`. */
export const responsesWire: Wire = responsesWireWith("responses", (headers) =>
  bearerToken(headers),
);

/** Azure OpenAI's v1 Responses API: `api-key: <key>` and an `api-version`. */
export const azureWire: Wire = responsesWireWith(
  "azure",
  (headers) => {
    const key = headers["api-key"];
    return (Array.isArray(key) ? key[0] : key) ?? undefined;
  },
  (url) =>
    url.searchParams.get("api-version")
      ? undefined
      : "Missing required query parameter: api-version",
);
