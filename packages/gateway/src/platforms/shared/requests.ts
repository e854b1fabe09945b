import {
  type CapabilityKind,
  DECISIONS,
  type DecisionChoice,
  type DecisionMeaning,
  decisionChoices,
  RequestOutcome,
  visibleText,
} from "@lobu/core";
import type { RequestEvent } from "../../domain/requests.ts";
import { approvalHeading } from "./approval-view.ts";
import { clip } from "./markdown.ts";

export type { RequestEvent };

/** A button on a request card; `choice` is what the answer carries. */
export interface CardButton {
  choice: string;
  label: string;
  style?: "primary" | "danger";
}

export function isRequestEvent(event: { type: string }): event is RequestEvent {
  return (
    event.type === "question" ||
    event.type === "approval_request" ||
    event.type === "capability_request"
  );
}

/**
 * The answer buttons of a request (approval: approve / deny / always; capability:
 * granted / denied). An approval whose full input the person cannot read on
 * this surface gets Deny only (`canApprove` false).
 */
export function cardButtons(event: RequestEvent, canApprove = true): CardButton[] {
  switch (event.type) {
    case "question":
      return event.options.map((o) => ({
        choice: o.id,
        label: o.label,
        ...(o.style && o.style !== "default" ? { style: o.style } : {}),
      }));
    case "approval_request":
    case "capability_request":
      return decisionChoices(event.type, canApprove).map(decisionButton);
  }
}

function decisionButton(choice: DecisionChoice): CardButton {
  const { label, style }: DecisionMeaning = DECISIONS[choice];
  return { choice, label, ...(style ? { style } : {}) };
}

const KIND_LABEL: { [K in CapabilityKind]: string } = {
  skill: "skill",
  domain: "network domain",
  package: "package",
  mcp: "MCP server",
  secret: "secret",
};

/**
 * The card's text, as Markdown (each platform renders it in its own markup).
 * An approval's text is only its heading: the platforms show the input itself
 * verbatim (approval-view.ts), never through Markdown.
 */
export function cardMarkdown(event: RequestEvent): string {
  switch (event.type) {
    case "question":
      return `❓ ${event.prompt}`;
    case "approval_request":
      return approvalHeading(event);
    case "capability_request":
      // What would be granted, exactly: hidden characters in it are shown.
      return `🧩 **The agent asks for a ${KIND_LABEL[event.kind]}**: \`${visibleText(event.value)}\`\n\n${clip(visibleText(event.reason), 1500)}`;
  }
}

/**
 * The label of a capability card's link: an MCP server's is a connect link
 * (the person signs in to their own account there), every other kind's the
 * settings page.
 */
export function linkLabel(event: Extract<RequestEvent, { type: "capability_request" }>): string {
  return event.kind === "mcp" && event.url ? `Connect ${clip(event.value, 40)}` : "Open settings";
}

/** The private message carrying a capability request's link (outside direct conversations). */
export function privateLinkText(
  event: Extract<RequestEvent, { type: "capability_request" }>,
  url: string,
): string {
  return event.kind === "mcp" && event.url
    ? `Connect your own ${event.value} account for the agent (this link is for you alone): ${url}`
    : `Your settings, to answer the agent's request for ${event.value}: ${url}`;
}

/** Choices that refuse what was asked (shown with ⛔). */
const NEGATIVE = new Set<string>(
  Object.entries(DECISIONS)
    .filter(([, meaning]) => !meaning.grants)
    .map(([choice]) => choice),
);

/** Who answered, for display: the answer label without the platform prefix (`slack:alice` → `alice`). */
export function displayName(by: string | undefined, platform: string): string | undefined {
  if (!by) return undefined;
  return by.startsWith(`${platform}:`) ? by.slice(platform.length + 1) : by;
}

/** The line that replaces a card's buttons once answered, as Markdown. */
export function resolvedMarkdown(
  event: RequestEvent,
  outcome: string,
  by: string | undefined,
): string {
  // The gateway expires requests nobody answered in time (or whose turn ended).
  if (outcome === RequestOutcome.enum.expired) return EXPIRED_MARKDOWN;
  return outcomeMarkdown(
    cardButtons(event).find((b) => b.choice === outcome)?.label ?? outcome,
    outcome,
    by,
  );
}

/** `✅ **Approve** (answered by alice)`; a refusal gets ⛔. */
export function outcomeMarkdown(label: string, outcome: string, by: string | undefined): string {
  return `${NEGATIVE.has(outcome) ? "⛔" : "✅"} **${label}**${by ? ` (answered by ${by})` : ""}`;
}

/** The line for a card nobody can answer any more (the attempt it belonged to ended). */
export const EXPIRED_MARKDOWN = "⌛ _No longer waiting for an answer._";
