import { inputText, MARK_CLOSE, MARK_OPEN } from "@lobu/core";
import type { ApprovalEvent } from "../../domain/requests.ts";

/**
 * An approval card, independent of the platform. The card shows the input the
 * gateway derived from what will run (event.display); when a platform cannot
 * show all of it in one message, the card shows the beginning, says so, and
 * the full text goes along as a file. Approve is offered only when the person
 * can read everything: the whole input is on the card, or the file with all
 * of it was delivered.
 */

export interface InlineLimits {
  maxChars: number;
  maxLines: number;
}

export interface ApprovalView {
  /** The whole input as shown (visible text). */
  full: string;
  /** What fits on the card: `full`, or its beginning. */
  shown: string;
  /** `shown` is only the beginning of `full`. */
  cut: boolean;
  /** False when even `full` is not the whole input (too long to show): only Deny is possible. */
  complete: boolean;
  /** Name of the file that carries `full` when the card is cut. */
  fileName: string;
}

export function approvalView(event: ApprovalEvent, limits: InlineLimits): ApprovalView {
  const full = event.display ?? inputText(event.input);
  const shown = headOf(full, limits);
  return {
    full,
    shown,
    cut: shown.length < full.length,
    complete: event.displayComplete !== false,
    fileName: `approval-${event.requestId}.txt`,
  };
}

/** The beginning of `text` within the limits: whole lines when it can, never half a mark or a character. */
export function headOf(text: string, limits: InlineLimits): string {
  const lines = text.split("\n");
  if (text.length <= limits.maxChars && lines.length <= limits.maxLines) return text;
  let head = lines.slice(0, limits.maxLines).join("\n");
  if (head.length > limits.maxChars) {
    const lastBreak = head.lastIndexOf("\n", limits.maxChars);
    head = lastBreak > 0 ? head.slice(0, lastBreak) : cutInside(head, limits.maxChars);
  }
  return head;
}

function cutInside(text: string, max: number): string {
  let head = text.slice(0, max);
  // A lone high surrogate at the end is half a character.
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  // Never leave half a mark: it would read as text.
  const open = head.lastIndexOf(MARK_OPEN);
  if (open !== -1 && head.indexOf(MARK_CLOSE, open) === -1) head = head.slice(0, open);
  return head;
}

/** Whether the person can read everything before approving (otherwise only Deny is offered). */
export function canApprove(view: ApprovalView, attached: boolean): boolean {
  return view.complete && (!view.cut || attached);
}

/** The card's first line, as Markdown. */
export function approvalHeading(event: ApprovalEvent): string {
  return `🔐 **Approval needed**: the agent wants to use \`${event.tool}\` with exactly this input:`;
}

function lineCount(text: string): number {
  return text.split("\n").length;
}

/** What the card says below the input, as Markdown lines (legend, cut, cannot approve). */
export function approvalNotes(view: ApprovalView, attached: boolean): string[] {
  const notes: string[] = [];
  if (view.full.includes(MARK_OPEN)) {
    notes.push(
      `\`${MARK_OPEN}…${MARK_CLOSE}\` marks characters that would otherwise be invisible or misleading (runs of spaces, tabs, control and text-direction characters).`,
    );
  }
  if (!view.complete) {
    notes.push(
      "⚠️ This input is too long to show in full, so it cannot be approved: deny it and ask the agent for smaller steps.",
    );
  } else if (view.cut && attached) {
    notes.push(
      `✂️ Only the first ${lineCount(view.shown).toLocaleString("en")} of ${lineCount(view.full).toLocaleString("en")} lines (${view.shown.length.toLocaleString("en")} of ${view.full.length.toLocaleString("en")} characters) are shown here. The full input is attached above as \`${view.fileName}\`: read it before you approve.`,
    );
  } else if (view.cut) {
    notes.push(
      "⚠️ Only the beginning of the input is shown, and the full input could not be attached here, so it cannot be approved from this chat. Deny it, or ask the agent for smaller steps.",
    );
  }
  return notes;
}
