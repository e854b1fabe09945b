import { z } from "zod";
import { AgentEvent, RequestAnswer } from "./events.ts";

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

export const ToolPolicy = z.enum(["allow", "ask", "deny"]);
export type ToolPolicy = z.infer<typeof ToolPolicy>;

export const ModelSpec = z.object({
  /** Gateway provider id; appears in the relay path. */
  provider: z.string(),
  api: z.enum(["anthropic-messages", "openai-completions"]),
  id: z.string(),
  /** Path on the worker's egress endpoint that relays to the provider (e.g. `/__lobu/llm/anthropic`). */
  endpoint: z.string().startsWith("/"),
  /** Placeholder credential; the gateway swaps it for the real key. */
  apiKey: z.string(),
  contextWindow: z.number().int().positive().default(200_000),
  maxTokens: z.number().int().positive().default(8192),
});
export type ModelSpec = z.infer<typeof ModelSpec>;

export const SkillSpec = z.object({
  name: z.string(),
  description: z.string().default(""),
  instructions: z.string().default(""),
});
export type SkillSpec = z.infer<typeof SkillSpec>;

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
});
export type TurnContext = z.infer<typeof TurnContext>;

export const GatewayToWorker = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("turn"),
    sandboxId: z.string(),
    turnId: z.string(),
    messageId: z.string(),
    text: z.string(),
    context: TurnContext,
  }),
  z.object({
    t: z.literal("answer"),
    sandboxId: z.string(),
    requestId: z.string(),
    answer: RequestAnswer,
  }),
  z.object({ t: z.literal("cancel"), sandboxId: z.string(), turnId: z.string() }),
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
    status: z.enum(["done", "error", "cancelled"]),
    text: z.string().default(""),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
  }),
  z.object({ t: z.literal("closed"), sandboxId: z.string() }),
  z.object({
    t: z.literal("log"),
    level: z.enum(["debug", "info", "warn", "error"]),
    msg: z.string(),
    sandboxId: z.string().optional(),
  }),
]);
export type WorkerToGateway = z.infer<typeof WorkerToGateway>;
