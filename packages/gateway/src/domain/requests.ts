import { AgentEvent, approvalDisplay, RequestAnswer, RequestStatus } from "@lobu/core";
import { z } from "zod";
import { Origin } from "./origin.ts";

const REQUEST_TYPES = ["question", "approval_request", "capability_request"] as const;

/** The events that wait for a person: a question, an approval, a capability request. */
export type RequestEvent = Extract<AgentEvent, { type: (typeof REQUEST_TYPES)[number] }>;
export const RequestEvent = AgentEvent.pipe(
  z.custom<RequestEvent>(
    (e) => (REQUEST_TYPES as readonly string[]).includes((e as AgentEvent).type),
    "not a question, approval or capability request",
  ),
);

/** A request as the gateway keeps it until it is answered or expires (stored as `req:<id>`). */
export const PendingRequest = z.object({
  requestId: z.string().min(1),
  messageId: z.string(),
  sandboxId: z.string(),
  agentId: z.string(),
  origin: Origin,
  event: RequestEvent,
  status: RequestStatus,
  answer: RequestAnswer.optional(),
  createdAt: z.number(),
  answeredAt: z.number().optional(),
  /** The turn (`<messageId>.<attempt>`) that asked; absent on records older than this field. */
  turnId: z.string().optional(),
});
export type PendingRequest = z.infer<typeof PendingRequest>;

/** Who is answering: the person in the chat, or an operator/API client. */
export interface Answerer {
  userKey?: string;
  admin?: boolean;
  /** Shown in the audit log and on the resolved card (`platform:user`). */
  label: string;
}

export type ApprovalEvent = Extract<RequestEvent, { type: "approval_request" }>;

/**
 * An approval request as the gateway shows it: the summary, the display and
 * the digest are derived here from the exact input that will run, never
 * taken from what a worker wrote about it.
 */
export function approvalEvent(requestId: string, tool: string, input: unknown): ApprovalEvent {
  const shown = approvalDisplay(tool, input);
  return {
    type: "approval_request",
    requestId,
    tool,
    input,
    summary: shown.summary,
    display: shown.display,
    displayComplete: shown.complete,
    inputDigest: shown.inputDigest,
  };
}

/** A request event from a worker, with every field the gateway derives replaced by its own. */
export function fromWorker(event: RequestEvent): RequestEvent {
  return event.type === "approval_request"
    ? approvalEvent(event.requestId, event.tool, event.input)
    : event;
}
