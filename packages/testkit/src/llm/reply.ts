import { newId } from "./ids.ts";
import type {
  MockLlmApi,
  MockTextTurn,
  MockToolTurn,
  MockTurn,
  RecordedRequest,
  StaticMockTurn,
} from "./types.ts";
import { isRecord } from "./wire.ts";

/** A scripted answer, independent of wire format, ready to be rendered by one API. */
export interface Reply {
  text: string;
  textChunks: string[];
  toolCalls: PlannedToolCall[];
  /** As scripted (either API's vocabulary), or undefined to derive it from the content. */
  stopReason: string | undefined;
  delayMs: number;
  inputTokens: number;
  outputTokens: number;
}

export interface PlannedToolCall {
  id: string;
  name: string;
  argumentsJson: string;
  fragments: string[];
}

const TOOL_ID_PREFIX: Record<MockLlmApi, string> = {
  anthropic: "toolu_01",
  openai: "call_",
  responses: "call_",
  azure: "call_",
  gemini: "call_",
  vertex: "call_",
  bedrock: "tooluse_",
};

export function planReply(
  turn: MockTextTurn | MockToolTurn,
  api: MockLlmApi,
  body: Record<string, unknown>,
): Reply {
  const text = turn.text ?? "";
  const textChunks = "chunks" in turn && turn.chunks ? turn.chunks : splitText(text);
  const toolCalls = ("toolCalls" in turn ? turn.toolCalls : []).map((call) => {
    const argumentsJson = JSON.stringify(call.input ?? {});
    return {
      id: call.id ?? newId(TOOL_ID_PREFIX[api], 22),
      name: call.name,
      argumentsJson,
      fragments: splitEvenly(argumentsJson, 3),
    };
  });
  const outputChars =
    text.length + toolCalls.reduce((n, c) => n + c.name.length + c.argumentsJson.length, 0);
  return {
    text,
    textChunks,
    toolCalls,
    stopReason: "stopReason" in turn ? turn.stopReason : undefined,
    delayMs: turn.delayMs ?? 0,
    inputTokens: estimateInputTokens(body),
    outputTokens: Math.max(1, Math.ceil(outputChars / 4)),
  };
}

/** Roughly what a tokenizer would count: ~4 characters per token over the prompt-bearing fields. */
export function estimateInputTokens(body: Record<string, unknown>): number {
  const prompt = JSON.stringify([
    body.system,
    body.messages,
    body.tools,
    // Gemini, the Responses API
    body.systemInstruction,
    body.contents,
    body.instructions,
    body.input,
    body.toolConfig,
  ]);
  return Math.max(1, Math.ceil(prompt.length / 4));
}

/** Split at word boundaries into at most `maxChunks` deltas, so streaming is observable. */
export function splitText(text: string, maxChunks = 8): string[] {
  if (text === "") return [];
  const words = text.split(/(?<=\s)(?=\S)/);
  const per = Math.ceil(words.length / maxChunks);
  const chunks: string[] = [];
  for (let i = 0; i < words.length; i += per) chunks.push(words.slice(i, i + per).join(""));
  return chunks;
}

function splitEvenly(s: string, parts: number): string[] {
  const size = Math.max(1, Math.ceil(s.length / parts));
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

/** Reject malformed scripts where they are written rather than when a request hits them. */
export function assertValidTurn(turn: MockTurn): void {
  if (typeof turn === "function") return;
  const problem = turnProblem(turn);
  if (problem) throw new TypeError(`Invalid mock LLM turn ${JSON.stringify(turn)}: ${problem}`);
}

function turnProblem(turn: StaticMockTurn): string | undefined {
  if (typeof turn !== "object" || turn === null) return "expected an object or a function";
  if ("error" in turn) {
    return Number.isInteger(turn.error?.status) && turn.error.status >= 400
      ? undefined
      : "error.status must be an HTTP error status (>= 400)";
  }
  if ("hang" in turn) return turn.hang === true ? undefined : "hang must be true";
  if ("toolCalls" in turn) {
    if (!Array.isArray(turn.toolCalls) || turn.toolCalls.length === 0) {
      return "toolCalls must be a non-empty array (use { text } for a plain reply)";
    }
    if (!turn.toolCalls.every((c) => typeof c.name === "string" && c.name !== "")) {
      return "every tool call needs a name";
    }
    // Both APIs carry tool arguments as a JSON object.
    return turn.toolCalls.every((c) => c.input === undefined || isRecord(c.input))
      ? undefined
      : "tool call input must be an object";
  }
  if ("text" in turn) {
    if (typeof turn.text !== "string") return "text must be a string";
    if (turn.chunks && turn.chunks.join("") !== turn.text) return "chunks must join to text";
    return undefined;
  }
  return "expected one of { text }, { toolCalls }, { error }, { hang: true }";
}

/** Call function turns (which may return further functions) until a static turn remains. */
export async function resolveTurn(turn: MockTurn, req: RecordedRequest): Promise<StaticMockTurn> {
  let current = turn;
  while (typeof current === "function") current = await current(req);
  assertValidTurn(current);
  return current;
}

/** Stop reasons in both vocabularies, so one script drives either API. */
const TO_OPENAI: Record<string, string> = {
  end_turn: "stop",
  stop_sequence: "stop",
  pause_turn: "stop",
  max_tokens: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
};
const TO_ANTHROPIC: Record<string, string> = {
  stop: "end_turn",
  length: "max_tokens",
  tool_calls: "tool_use",
  content_filter: "refusal",
};

export function stopReasonFor(api: MockLlmApi, reply: Reply): string {
  const scripted = reply.stopReason;
  if (api === "anthropic" || api === "bedrock") {
    if (scripted) return TO_ANTHROPIC[scripted] ?? scripted;
    return reply.toolCalls.length > 0 ? "tool_use" : "end_turn";
  }
  if (scripted) return TO_OPENAI[scripted] ?? scripted;
  return reply.toolCalls.length > 0 ? "tool_calls" : "stop";
}

export function defaultErrorMessage(status: number): string {
  if (status === 429) return "Rate limit exceeded (scripted by the mock LLM). Retry later.";
  if (status === 529) return "Overloaded";
  if (status >= 500) return "Internal server error";
  return `Request failed with status ${status}`;
}
