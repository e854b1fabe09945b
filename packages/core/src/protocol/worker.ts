import { z } from "zod";
import { AgentEvent, RequestAnswer, TurnEndStatus, TurnErrorCode } from "./events.ts";

/**
 * Gateway ↔ worker control protocol, version 1.
 *
 * Transport: newline-delimited JSON on file descriptor 3 of the worker process
 * (one object per line, UTF-8). Every message names the sandbox it concerns so one
 * worker process can host one sandbox (`process` driver) or many (`virtual` pool).
 * The worker reaches the outside world only through the gateway's egress endpoint
 * (the Unix socket named by `LOBU_EGRESS_SOCKET`); see docs/protocol.md.
 */
export const PROTOCOL_VERSION = 1;

/**
 * A W3C `traceparent` (version 00): the span a worker's work belongs to. The
 * gateway sends the turn's; the worker sends it back on its model calls (as
 * the HTTP header) and gateway tool calls, so one trace shows the whole turn.
 */
export const Traceparent = z.string().regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);

export const ToolPolicy = z.enum(["allow", "ask", "deny"]);
export type ToolPolicy = z.infer<typeof ToolPolicy>;

export const ModelSpec = z.object({
  /** Gateway provider id; appears in the relay path. */
  provider: z.string(),
  /** pi's API (wire format) for the provider. */
  api: z.enum([
    "anthropic-messages",
    "openai-completions",
    "openai-responses",
    "google-generative-ai",
    "google-vertex",
    "bedrock-converse-stream",
    "azure-openai-responses",
  ]),
  id: z.string(),
  /** Path on the worker's egress endpoint that relays to the provider (e.g. `/__lobu/llm/anthropic`). */
  endpoint: z.string().startsWith("/"),
  /** Placeholder credential; the gateway swaps it for the real key. */
  apiKey: z.string(),
  contextWindow: z.number().int().positive().default(200_000),
  maxTokens: z.number().int().positive().default(8192),
  /** The model takes pictures as image content (the turn's `images`, the read tool's images). */
  images: z.boolean().optional(),
  /**
   * pi's request compatibility settings for the provider behind the relay
   * (`maxTokensField`, `supportsStore`, ...): pi detects them from the base URL,
   * which is the relay's here, so the gateway says them (providers/presets.ts).
   */
  compat: z.record(z.string(), z.unknown()).optional(),
});
export type ModelSpec = z.infer<typeof ModelSpec>;

export const SkillSpec = z.object({
  name: z.string(),
  description: z.string().default(""),
  instructions: z.string().default(""),
  /**
   * The skill ships files (its folder: SKILL.md, scripts, references), shown
   * read-only in the sandbox under the skills directory the driver mounts
   * (`/skills/<name>`). Inline skills from lobu.toml have none.
   */
  files: z.boolean().default(false),
  /** Environment variables (secrets) the skill expects; the agent asks for missing ones. */
  secrets: z.array(z.string()).default([]),
});
export type SkillSpec = z.infer<typeof SkillSpec>;

/**
 * A tool that runs in the gateway, outside the sandbox (MCP tools and other
 * gateway-side actions). The worker offers it to the model and forwards calls
 * with `gateway_tool_call`; the gateway applies the tool policy, asks for
 * approval itself and runs it. Names are unique among the turn's tools.
 */
export const GatewayToolSpec = z.object({
  name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
  description: z.string().max(4000),
  /** JSON Schema of the input (an object schema). */
  parameters: z.record(z.string(), z.unknown()),
});
export type GatewayToolSpec = z.infer<typeof GatewayToolSpec>;

/** Longest output of a gateway tool sent back to a worker. */
export const MAX_GATEWAY_TOOL_OUTPUT = 100_000;

/** Everything a worker needs to run one turn; sent with every turn so changes apply at once. */
export const TurnContext = z.object({
  agentId: z.string(),
  model: ModelSpec,
  systemPrompt: z.string(),
  /** Built-in pi tools to enable (bash, read, write, edit, grep, find, ls). */
  tools: z.array(z.string()),
  /** Per-tool policy; tools not listed are allowed. `*` sets the default. */
  toolPolicy: z.record(z.string(), ToolPolicy).default({}),
  skills: z.array(SkillSpec).default([]),
  /** Extra environment for the agent's shell: only placeholders, never real secrets. */
  env: z.record(z.string(), z.string()).default({}),
  /** Seconds an approval or question may wait before the turn continues without it. */
  requestTimeoutSec: z.number().int().positive().default(900),
  /** Gateway-side tools this turn may call (see GatewayToolSpec); none when absent. */
  gatewayTools: z.array(GatewayToolSpec).max(128).optional(),
});
export type TurnContext = z.infer<typeof TurnContext>;

/** Why the gateway did not run a gateway-side tool (`gateway_tool_result.error.code`). */
export const GatewayToolErrorCode = z.enum([
  /** The call does not name the running turn of its sandbox (or the turn ended). */
  "not_in_turn",
  "unknown_tool",
  /** Too many calls of one turn in flight. */
  "busy",
  /** The input does not match the tool's schema. */
  "invalid_input",
  "denied_by_policy",
  /** The person denied the approval, or it timed out, or it was for another input. */
  "not_approved",
  /** The tool ran and threw. */
  "tool_failed",
]);
export type GatewayToolErrorCode = z.infer<typeof GatewayToolErrorCode>;

/**
 * Longest stdout (and stderr), in characters, of one pooled tool command sent
 * back to a pool: both escaped at 6 bytes a character (binary output) still fit
 * one control-channel line (MAX_LINE_BYTES), so no command can break its pool's
 * channel. pi shows the model far less anyway.
 */
export const MAX_TOOL_EXEC_OUTPUT = 512_000;

/** Largest picture (decoded bytes) a turn hands the model as image content. */
export const MAX_TURN_IMAGE_BYTES = 3_750_000;
/** Most picture bytes one turn carries: the turn is one control-channel line (MAX_LINE_BYTES). */
export const MAX_TURN_IMAGES_TOTAL_BYTES = 4_500_000;

/** A picture the person attached, for the model to see (it is also a file in the sandbox). */
export const TurnImage = z.object({
  mimeType: z.enum(["image/png", "image/jpeg", "image/gif", "image/webp"]),
  /** Base64 of the image's bytes. */
  data: z.string().max(Math.ceil(MAX_TURN_IMAGE_BYTES / 3) * 4),
});
export type TurnImage = z.infer<typeof TurnImage>;

/** A stdio MCP server the worker runs inside its sandbox (`[mcp.<id>] command`, `args`). */
export const StdioServerSpec = z.object({
  id: z.string().min(1).max(64),
  command: z.string().min(1).max(200),
  args: z.array(z.string().max(1000)).max(50),
});
export type StdioServerSpec = z.infer<typeof StdioServerSpec>;

/** Most stdio servers one listing asks for, and most tools one server may report. */
export const MAX_STDIO_SERVERS = 32;
export const MAX_STDIO_TOOLS = 200;

/**
 * What a worker reports for one stdio server: its tools as `tools/list`
 * returned them (untrusted: the gateway validates and bounds each), or why
 * it could not run the server.
 */
export const StdioServerTools = z.object({
  id: z.string().max(64),
  tools: z.array(z.unknown()).max(MAX_STDIO_TOOLS).optional(),
  error: z.string().max(2000).optional(),
});
export type StdioServerTools = z.infer<typeof StdioServerTools>;

export const GatewayToWorker = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("turn"),
    sandboxId: z.string(),
    turnId: z.string(),
    messageId: z.string(),
    text: z.string(),
    context: TurnContext,
    /** Pictures attached to the message, shown to the model with `text` (when its model takes images). */
    images: z.array(TurnImage).max(8).optional(),
    /** The trace context of the turn's worker span; absent when the gateway traces nothing. */
    traceparent: Traceparent.optional(),
  }),
  z.object({
    t: z.literal("answer"),
    sandboxId: z.string(),
    requestId: z.string(),
    answer: RequestAnswer,
  }),
  z.object({ t: z.literal("cancel"), sandboxId: z.string(), turnId: z.string() }),
  /**
   * The outcome of a `gateway_tool_call`: `output` when the gateway ran the
   * tool, `error` when it refused (policy, denial, no running turn, bad input)
   * or the tool failed.
   */
  z.object({
    t: z.literal("gateway_tool_result"),
    sandboxId: z.string(),
    callId: z.string(),
    ok: z.boolean(),
    output: z.string().max(MAX_GATEWAY_TOOL_OUTPUT).optional(),
    error: z.object({ code: GatewayToolErrorCode, message: z.string() }).optional(),
  }),
  /**
   * Start (once; again after a crash, bounded) the sandbox's stdio MCP
   * servers and list their tools; answered by `mcp_stdio_tools` (same
   * `requestId`). Sent before a turn whose person has stdio servers.
   */
  z.object({
    t: z.literal("mcp_stdio_list"),
    sandboxId: z.string(),
    requestId: z.string().min(1).max(100),
    servers: z.array(StdioServerSpec).max(MAX_STDIO_SERVERS),
  }),
  /**
   * Run a tool on a stdio server the worker listed, after the gateway applied
   * policy and approvals; answered by `mcp_stdio_result` (same `callId`).
   */
  z.object({
    t: z.literal("mcp_stdio_call"),
    sandboxId: z.string(),
    callId: z.string().min(1).max(100),
    server: StdioServerSpec,
    tool: z.string().max(200),
    input: z.record(z.string(), z.unknown()),
    timeoutMs: z.number().int().positive(),
  }),
  /** The turn ended (or the call timed out): cancel the call at the server. */
  z.object({ t: z.literal("mcp_stdio_cancel"), sandboxId: z.string(), callId: z.string() }),
  /**
   * The outcome of `tool_exec` (pooled process tier): the command's output and
   * exit code (null when it was stopped), or why it could not run.
   */
  z.object({
    t: z.literal("tool_exec_result"),
    sandboxId: z.string(),
    callId: z.string().max(100),
    exitCode: z.number().int().nullable(),
    stdout: z.string().max(MAX_TOOL_EXEC_OUTPUT),
    stderr: z.string().max(MAX_TOOL_EXEC_OUTPUT),
    timedOut: z.boolean().optional(),
    error: z.string().max(2000).optional(),
  }),
  /** Unload the sandbox's session (pool workers keep serving others). */
  z.object({ t: z.literal("close"), sandboxId: z.string() }),
  z.object({ t: z.literal("shutdown") }),
]);
export type GatewayToWorker = z.infer<typeof GatewayToWorker>;

export const WorkerToGateway = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("ready"),
    protocol: z.number().int(),
    pid: z.number().int(),
    mode: z.enum(["single", "pool"]),
  }),
  z.object({ t: z.literal("event"), sandboxId: z.string(), turnId: z.string(), event: AgentEvent }),
  z.object({
    t: z.literal("turn_end"),
    sandboxId: z.string(),
    turnId: z.string(),
    status: TurnEndStatus,
    text: z.string().default(""),
    error: z.object({ code: TurnErrorCode, message: z.string() }).optional(),
  }),
  /**
   * Call a gateway-side tool during turn `turnId`. The gateway answers with
   * `gateway_tool_result` (same `callId`); calls that are not from the running
   * turn of that sandbox are refused.
   */
  z.object({
    t: z.literal("gateway_tool_call"),
    sandboxId: z.string(),
    turnId: z.string(),
    callId: z.string().min(1).max(100),
    tool: z.string().max(64),
    input: z.unknown(),
    /** The turn's `traceparent` as the worker got it (the gateway trusts only its own turn's trace). */
    traceparent: Traceparent.optional(),
  }),
  /** The tools of the servers `mcp_stdio_list` named, one entry per server. */
  z.object({
    t: z.literal("mcp_stdio_tools"),
    sandboxId: z.string(),
    requestId: z.string().max(100),
    servers: z.array(StdioServerTools).max(MAX_STDIO_SERVERS),
  }),
  /**
   * The outcome of `mcp_stdio_call`: the server's `CallToolResult` (untrusted:
   * the gateway validates and bounds it), or why the call failed.
   */
  z.object({
    t: z.literal("mcp_stdio_result"),
    sandboxId: z.string(),
    callId: z.string().max(100),
    result: z.unknown().optional(),
    error: z.string().max(2000).optional(),
  }),
  /**
   * Pooled process tier: run a bash command line in the sandbox's own tool
   * sandbox (bwrap over its volume, started by the gateway) while a turn of
   * that sandbox runs; answered by `tool_exec_result` (same `callId`).
   */
  z.object({
    t: z.literal("tool_exec"),
    sandboxId: z.string(),
    callId: z.string().min(1).max(100),
    command: z.string().max(1_000_000),
    /** Working directory inside the tool sandbox (under /workspace). */
    cwd: z.string().max(4096),
    /** Extra environment: the turn's placeholders, never real secrets. */
    env: z.record(z.string(), z.string()).default({}),
    timeoutMs: z.number().int().positive(),
  }),
  /** Stop a running `tool_exec` (the turn was cancelled). */
  z.object({ t: z.literal("tool_exec_cancel"), sandboxId: z.string(), callId: z.string() }),
  z.object({ t: z.literal("closed"), sandboxId: z.string() }),
  z.object({
    t: z.literal("log"),
    level: z.enum(["debug", "info", "warn", "error"]),
    msg: z.string(),
    sandboxId: z.string().optional(),
  }),
]);
export type WorkerToGateway = z.infer<typeof WorkerToGateway>;
