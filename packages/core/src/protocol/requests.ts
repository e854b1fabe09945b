import { z } from "zod";

/**
 * The vocabulary of requests that wait for a person (questions, approvals,
 * capability requests): the choices an answer may carry and how a request
 * ends. The gateway, the worker, the platforms, the web pages and the CLI all
 * take them from here. A question's answers are its own option ids (or free
 * text), so `RequestAnswer.choice` stays a string on the wire; these are the
 * fixed choices of the other two kinds.
 */

/** The answer to an `approval_request`. */
export const ApprovalChoice = z.enum(["approve", "deny", "always"]);
export type ApprovalChoice = z.infer<typeof ApprovalChoice>;

/** The answer to a `capability_request`. */
export const CapabilityChoice = z.enum(["granted", "denied"]);
export type CapabilityChoice = z.infer<typeof CapabilityChoice>;

/** A fixed choice: the answer to an approval or a capability request. */
export type DecisionChoice = ApprovalChoice | CapabilityChoice;

/** What a fixed choice means, and how every surface labels its button. */
export interface DecisionMeaning {
  /** The request goes ahead (the tool runs, the capability is granted). */
  grants: boolean;
  label: string;
  style?: "primary" | "danger";
}

export const DECISIONS = {
  approve: { grants: true, label: "Approve", style: "primary" },
  deny: { grants: false, label: "Deny", style: "danger" },
  always: { grants: true, label: "Always allow" },
  granted: { grants: true, label: "Grant", style: "primary" },
  denied: { grants: false, label: "Deny", style: "danger" },
} as const satisfies { [C in DecisionChoice]: DecisionMeaning };

/** The fixed choices of each kind of request that has them (questions have their own options). */
export const CHOICES_OF = {
  approval_request: ApprovalChoice,
  capability_request: CapabilityChoice,
} as const;
export type DecisionRequestType = keyof typeof CHOICES_OF;

/**
 * The choices to offer for an approval or capability request, in the order
 * the surfaces show them. An approval whose input cannot be shown whole can
 * only be denied (`canApprove` false).
 */
export function decisionChoices(
  type: DecisionRequestType,
  canApprove = true,
): readonly DecisionChoice[] {
  if (type === "approval_request" && !canApprove) return [ApprovalChoice.enum.deny];
  return CHOICES_OF[type].options;
}

/** `choice` if it is one of `choices`, otherwise undefined (no answer, or another kind's). */
export function choiceIn<T extends string>(
  choices: z.ZodType<T>,
  choice: string | undefined,
): T | undefined {
  const parsed = choices.safeParse(choice);
  return parsed.success ? parsed.data : undefined;
}

/**
 * How a request ended other than by a fixed choice: `answered` (a question's
 * option or free text, or an answer without a choice) or `expired` (nobody
 * answered before its turn stopped waiting). The `outcome` of a
 * `request_resolved` event is the answer's choice, or one of these.
 */
export const RequestOutcome = z.enum(["answered", "expired"]);
export type RequestOutcome = z.infer<typeof RequestOutcome>;

/** Where a request stands: waiting for its answer, or ended. */
export const RequestStatus = z.enum(["pending", ...RequestOutcome.options]);
export type RequestStatus = z.infer<typeof RequestStatus>;
