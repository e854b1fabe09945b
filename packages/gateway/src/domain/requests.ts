import {
  type AgentEvent,
  approvalDisplay,
  type RequestAnswer,
  type RequestStatus,
} from "@lobu/core";
import type { Origin } from "./origin.ts";

/** The events that wait for a person: a question, an approval, a capability request. */
export type RequestEvent = Extract<
  AgentEvent,
  { type: "question" | "approval_request" | "capability_request" }
>;

/** A request as the gateway keeps it until it is answered or expires. */
export interface PendingRequest {
  requestId: string;
  messageId: string;
  sandboxId: string;
  agentId: string;
  origin: Origin;
  event: RequestEvent;
  status: RequestStatus;
  answer?: RequestAnswer;
  createdAt: number;
  answeredAt?: number;
}

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
