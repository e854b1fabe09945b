import { approvalDisplay } from "@lobu/core";
import type { RequestEvent } from "./requests.ts";

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
