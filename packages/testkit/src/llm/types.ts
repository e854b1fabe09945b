/** Public types of the mock LLM provider. */

/** The wire formats the mock speaks: each provider's own routes, auth, streaming and errors. */
export type MockLlmApi =
  | "anthropic"
  | "openai"
  | "responses"
  | "azure"
  | "gemini"
  | "vertex"
  | "bedrock";

/** A tool result the client sent back (Anthropic `tool_result` block or OpenAI `tool` message). */
export interface RecordedToolResult {
  id: string;
  content: string;
  isError: boolean;
}

export interface RecordedRequest {
  api: MockLlmApi;
  method: string;
  /** Path and query as received, e.g. `/anthropic/v1/messages?beta=true`. */
  path: string;
  /** Header names are lower-cased; repeated headers are joined with ", ". */
  headers: Record<string, string>;
  /** Parsed JSON body (`{}` for bodiless or unparseable requests). */
  body: Record<string, unknown>;
  apiKey: string | undefined;
  model: string | undefined;
  /** Text of the most recent user message that has text (tool-result-only messages are skipped); "" if none. */
  lastUserText: string;
  /** Tool results sent after the last assistant message, i.e. answers to the previous turn's tool calls. */
  toolResults: RecordedToolResult[];
  /** Arrival time (ms since epoch). */
  at: number;
  /** True once the client disconnected before the response was complete (e.g. a killed turn). */
  aborted: boolean;
}

export interface MockToolCall {
  name: string;
  /** The tool's arguments: a JSON object (both APIs carry one), checked when scripted. */
  input: unknown;
  /** Defaults to a fresh `toolu_...` (Anthropic) or `call_...` (OpenAI) id. */
  id?: string;
}

export interface MockTextTurn {
  text: string;
  /** Explicit stream deltas; must join to `text`. Default: `text` split at word boundaries. */
  chunks?: string[];
  /** Pause between streamed deltas. */
  delayMs?: number;
  /** Either API's vocabulary (`end_turn`, `max_tokens`, `stop`, `length`, ...); translated per API. */
  stopReason?: string;
}

export interface MockToolTurn {
  toolCalls: MockToolCall[];
  /** Optional text streamed before the tool calls. */
  text?: string;
  delayMs?: number;
}

export interface MockErrorTurn {
  error: { status: number; type?: string; message?: string; retryAfterSec?: number };
}

/** Accept the request and send nothing until the client disconnects. */
export interface MockHangTurn {
  hang: true;
}

export type MockTurnFn = (req: RecordedRequest) => MockTurn | Promise<MockTurn>;

export type MockTurn = MockTextTurn | MockToolTurn | MockErrorTurn | MockHangTurn | MockTurnFn;

export type StaticMockTurn = Exclude<MockTurn, MockTurnFn>;
