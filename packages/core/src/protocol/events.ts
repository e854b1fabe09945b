import { z } from "zod";
import { LobuErrorCode } from "../error-codes.ts";

/**
 * What a turn produces, in order. The worker emits these, the gateway stores and
 * relays them unchanged to every consumer (REST SSE, platform adapters, CLI).
 */
export const ChoiceOption = z.object({
  id: z.string().min(1).max(64),
  label: z.string().min(1).max(200),
  style: z.enum(["primary", "danger", "default"]).optional(),
});
export type ChoiceOption = z.infer<typeof ChoiceOption>;

export const CapabilityKind = z.enum(["skill", "domain", "package", "mcp", "secret"]);
export type CapabilityKind = z.infer<typeof CapabilityKind>;

/**
 * Why a worker ended a turn with status `error` (`turn_end.error.code`). The
 * gateway decides from the code alone whether to retry the message and what
 * the failure says about the sandbox's health (runtime/turn-outcome.ts);
 * docs/protocol.md lists them.
 */
export const TurnErrorCode = z.enum([
  /** Another turn is running in the sandbox. */
  "busy",
  /** The sandbox's saved state (transcript, turn journal) cannot be used. */
  "state_corrupt",
  /** The worker failed outside the agent's run. */
  "worker_error",
  /** The agent's run failed. */
  "agent_error",
  /** The model request failed (after the runtime's own retries). */
  "model_error",
]);
export type TurnErrorCode = z.infer<typeof TurnErrorCode>;

export const TurnEndStatus = z.enum(["done", "error", "cancelled"]);
export type TurnEndStatus = z.infer<typeof TurnEndStatus>;

/**
 * The code of a failed turn's `error` event: one of the gateway's error codes
 * (docs/api.md), the worker's own (TurnErrorCode), or how the turn ended when
 * the worker gave no code. Defined once, so every reader's switch is checked.
 */
export const TurnFailureCode = z.union([
  LobuErrorCode,
  TurnErrorCode,
  TurnEndStatus.exclude(["done"]),
]);
export type TurnFailureCode = z.infer<typeof TurnFailureCode>;

export const AgentEvent = z.discriminatedUnion("type", [
  z.object({ type: z.literal("turn_started"), turnId: z.string(), messageId: z.string() }),
  z.object({ type: z.literal("text_delta"), text: z.string() }),
  z.object({
    type: z.literal("tool_call"),
    callId: z.string(),
    name: z.string(),
    input: z.unknown(),
  }),
  z.object({
    type: z.literal("tool_result"),
    callId: z.string(),
    name: z.string(),
    output: z.string(),
    isError: z.boolean(),
  }),
  /** The agent asks the user to pick one option (or type an answer); the turn waits. */
  z.object({
    type: z.literal("question"),
    requestId: z.string(),
    prompt: z.string(),
    options: z.array(ChoiceOption).max(10),
    allowText: z.boolean().optional(),
  }),
  /**
   * A tool the policy marks "ask" wants to run; the turn waits for a decision.
   * The gateway derives `summary`, `display`, `displayComplete` and
   * `inputDigest` from `input` itself (approvalDisplay); whatever a worker
   * sends in them is replaced.
   */
  z.object({
    type: z.literal("approval_request"),
    requestId: z.string(),
    tool: z.string(),
    input: z.unknown(),
    /** One line: the tool and the size of its input (never a part of it). */
    summary: z.string().optional(),
    /** The whole input as it will run, hidden characters made visible (inputText). */
    display: z.string().optional(),
    /** False when the input is too long to show in full: it can then only be denied. */
    displayComplete: z.boolean().optional(),
    /** `sha256:<hex>` of the input's canonical JSON; an approval answer carries it back. */
    inputDigest: z.string().optional(),
  }),
  /** The agent lacks something (a skill, a domain, ...); the user approves it in settings. */
  z.object({
    type: z.literal("capability_request"),
    requestId: z.string(),
    kind: CapabilityKind,
    value: z.string(),
    reason: z.string(),
    url: z.string().optional(),
  }),
  /**
   * A request above was answered (so every surface can update its buttons).
   * `outcome` is the answer's choice (a DecisionChoice, or a question's option
   * id), or a RequestOutcome (`answered` without a choice, `expired`).
   */
  z.object({
    type: z.literal("request_resolved"),
    requestId: z.string(),
    outcome: z.string(),
    by: z.string().optional(),
  }),
  z.object({ type: z.literal("notice"), level: z.enum(["info", "warn"]), text: z.string() }),
  z.object({
    type: z.literal("usage"),
    provider: z.string(),
    model: z.string(),
    inputTokens: z.number().int().nonnegative(),
    outputTokens: z.number().int().nonnegative(),
  }),
  /** The turn failed, and why (TurnFailureCode). */
  z.object({ type: z.literal("error"), code: TurnFailureCode, message: z.string() }),
  z.object({ type: z.literal("done"), text: z.string() }),
  /**
   * The agent sent a file (`send_file`). Chat platforms got it natively; a
   * REST conversation's client downloads it from `url` with a token that may
   * read the message.
   */
  z.object({
    type: z.literal("file"),
    fileId: z.string(),
    name: z.string(),
    mimeType: z.string(),
    size: z.number().int().nonnegative(),
    caption: z.string().optional(),
    /** Path of the download on the gateway (`/api/v1/files/<fileId>`), for REST conversations. */
    url: z.string().optional(),
  }),
]);
export type AgentEvent = z.infer<typeof AgentEvent>;

/** The answer to a question, approval or capability request. */
export const RequestAnswer = z.object({
  /** Chosen option id (questions), ApprovalChoice (approvals) or CapabilityChoice (capability requests). */
  choice: z.string().max(64).optional(),
  text: z.string().max(4000).optional(),
  /** Who answered, as `platform:user`. */
  by: z.string().optional(),
  /**
   * Approvals: the digest of the input the person was shown, added by the
   * gateway from the stored request (never taken from whoever answers). The
   * worker runs the call only if its own input has this digest.
   */
  inputDigest: z.string().max(100).optional(),
});
export type RequestAnswer = z.infer<typeof RequestAnswer>;
