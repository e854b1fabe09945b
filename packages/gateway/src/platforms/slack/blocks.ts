import { type ApprovalView, approvalNotes, canApprove } from "../shared/approval-view.ts";
import { clip } from "../shared/markdown.ts";
import {
  type CardButton,
  cardButtons,
  cardMarkdown,
  linkLabel,
  privateLinkText,
  type RequestEvent,
} from "../shared/requests.ts";
import { STOP_BUTTONS, stopActionId } from "../shared/stop.ts";
import type { Part } from "../shared/turn-view.ts";
import { SECTION_LIMIT, toMrkdwnSections } from "./mrkdwn.ts";

/** A Block Kit block (Slack validates the shape; we only build a few kinds). */
export type Block = { type: string; block_id?: string; [key: string]: unknown };

/** Slack allows 50 blocks per message and 10 elements per context block. */
export const MAX_BLOCKS = 50;
const CONTEXT_ELEMENTS = 10;
/** The notification/fallback `text` of a message with blocks. */
const FALLBACK_LIMIT = 3000;

export const ACTION_PREFIX = "lobu:";
export const LINK_PREFIX = "lobu-link:";

export function section(mrkdwn: string): Block {
  return { type: "section", text: { type: "mrkdwn", text: mrkdwn } };
}

export function context(...mrkdwn: string[]): Block {
  return {
    type: "context",
    elements: mrkdwn.map((text) => ({ type: "mrkdwn", text: clip(text, SECTION_LIMIT) })),
  };
}

export interface LiveRender {
  blocks: Block[];
  text: string;
  /** The full reply text when it is too long to show inline. */
  overflow?: string;
}

/**
 * The streaming reply as blocks: reply text in sections, tool lines and
 * notices in context blocks. Text over `maxInline` characters is cut, with a
 * note (the caller attaches the full text as a file once final).
 */
export function liveBlocks(
  parts: Part[],
  maxInline: number,
  final: boolean,
  controls: Block[] = [],
): LiveRender {
  const fullText = parts
    .filter((p) => p.kind === "text")
    .map((p) => p.text)
    .join("\n\n");
  const overflow = fullText.length > maxInline;
  let budget = maxInline;
  const blocks: Block[] = [];
  let asides: string[] = [];
  const flushAsides = () => {
    for (let i = 0; i < asides.length; i += CONTEXT_ELEMENTS)
      blocks.push(context(...asides.slice(i, i + CONTEXT_ELEMENTS)));
    asides = [];
  };
  for (const part of parts) {
    if (part.kind === "aside") {
      asides.push(toMrkdwnSections(part.text).join(" "));
      continue;
    }
    flushAsides();
    if (budget <= 0) continue;
    const shown = part.text.length > budget ? clip(part.text, budget) : part.text;
    budget -= shown.length;
    for (const text of toMrkdwnSections(shown)) blocks.push(section(text));
  }
  flushAsides();
  if (overflow) {
    blocks.push(
      context(
        final
          ? `📎 The full reply (${fullText.length.toLocaleString("en")} characters) is attached as a file.`
          : `… still writing (${fullText.length.toLocaleString("en")} characters so far)`,
      ),
    );
  }
  const trimmed = [...fitBlocks(blocks, MAX_BLOCKS - controls.length), ...controls];
  const text = clip(
    trimmed
      .filter((b) => b.type === "section")
      .map((b) => (b.text as { text: string }).text)
      .join("\n\n") || "…",
    FALLBACK_LIMIT,
  );
  return {
    blocks: trimmed.length > controls.length ? trimmed : [section("…"), ...controls],
    text,
    ...(overflow ? { overflow: fullText } : {}),
  };
}

/** Within `max` blocks: the oldest tool lines give way first. */
function fitBlocks(blocks: Block[], max: number): Block[] {
  if (blocks.length <= max) return blocks;
  let drop = blocks.length - (max - 1);
  let dropped = 0;
  const kept = blocks.filter((b) => {
    if (drop > 0 && b.type === "context") {
      drop--;
      dropped++;
      return false;
    }
    return true;
  });
  const out = [context(`… ${dropped} earlier step${dropped === 1 ? "" : "s"} not shown`), ...kept];
  return out.slice(0, max);
}

/** The streaming reply's Stop buttons (shared/stop.ts), for the turn of `messageId`. */
export function stopBlock(messageId: string): Block {
  return {
    type: "actions",
    block_id: "lobu-stop",
    elements: STOP_BUTTONS.map((b) => ({
      type: "button",
      text: { type: "plain_text", text: b.label },
      action_id: stopActionId(messageId, b.clearQueue),
      ...(b.clearQueue ? {} : { style: "danger" }),
    })),
  };
}

export function actionId(requestId: string, choice: string): string {
  return `${ACTION_PREFIX}${requestId}:${choice}`;
}

/** `lobu:<requestId>:<choice>` → its parts (request ids have no colon; choices may). */
export function parseActionId(id: string): { requestId: string; choice: string } | undefined {
  if (!id.startsWith(ACTION_PREFIX)) return undefined;
  const rest = id.slice(ACTION_PREFIX.length);
  const colon = rest.indexOf(":");
  if (colon <= 0 || colon === rest.length - 1) return undefined;
  return { requestId: rest.slice(0, colon), choice: rest.slice(colon + 1) };
}

function button(b: CardButton, requestId: string): Block {
  return {
    type: "button",
    text: { type: "plain_text", text: clip(b.label, 75), emoji: true },
    action_id: actionId(requestId, b.choice),
    value: b.choice,
    ...(b.style ? { style: b.style } : {}),
  };
}

export function linkButton(label: string, url: string, id: string): Block {
  return {
    type: "button",
    text: { type: "plain_text", text: label, emoji: true },
    url,
    action_id: id,
  };
}

/**
 * What an approval card shows inline in Slack: a preformatted rich text block
 * takes the text literally (no mrkdwn, no escaping), so the input reads exactly
 * as it will run. Slack refuses messages whose blocks are too long in total;
 * a longer input is cut here and attached as a file.
 */
export const APPROVAL_INLINE = { maxChars: 2800, maxLines: 60 };

/** Text shown literally, in a code block (`rich_text_preformatted`). */
export function preformatted(text: string): Block {
  return {
    type: "rich_text",
    elements: [{ type: "rich_text_preformatted", elements: [{ type: "text", text: text || " " }] }],
  };
}

/**
 * The card's text blocks (kept when the buttons are replaced by the outcome).
 * An approval's input goes in a preformatted block after the heading, with the
 * notes on what is shown (`view`, and whether its file was `attached`).
 */
export function cardSections(
  event: RequestEvent,
  approval?: { view: ApprovalView; attached: boolean },
): Block[] {
  const text = toMrkdwnSections(cardMarkdown(event))
    .slice(0, 3)
    .map((t) => section(t));
  if (event.type !== "approval_request" || !approval) return text;
  const notes = approvalNotes(approval.view, approval.attached);
  return [
    ...text,
    preformatted(approval.view.shown),
    ...(notes.length ? [context(...notes.map((n) => toMrkdwnSections(n).join(" ")))] : []),
  ];
}

/** A request as a card: its text and a row of buttons (capability requests: a settings link too). */
export function cardBlocks(
  event: RequestEvent,
  settingsUrl: string | undefined,
  approval?: { view: ApprovalView; attached: boolean },
): Block[] {
  const elements: Block[] = [];
  if (event.type === "capability_request" && settingsUrl) {
    elements.push(linkButton(linkLabel(event), settingsUrl, `${LINK_PREFIX}${event.requestId}`));
  }
  const approvable = approval ? canApprove(approval.view, approval.attached) : true;
  elements.push(...cardButtons(event, approvable).map((b) => button(b, event.requestId)));
  return [
    ...cardSections(event, approval),
    { type: "actions", block_id: "lobu_actions", elements },
  ];
}

export function cardFallback(event: RequestEvent): string {
  return clip(
    toMrkdwnSections(cardMarkdown(event))[0] ?? "The agent is waiting for you",
    FALLBACK_LIMIT,
  );
}

/** A card whose buttons gave way to how it was answered. */
export function closedCard(sections: Block[], line: string): Block[] {
  return [...sections, context(toMrkdwnSections(line).join(" "))];
}

/** The personal settings button (the link carries a one-time claim code). */
/** A capability request's link, sent to the person alone (a connect link, or their settings). */
export function requestLinkBlocks(event: CapabilityRequestEvent, url: string): Block[] {
  if (event.kind !== "mcp" || !event.url) return settingsBlocks(url);
  return [
    section(privateLinkText(event, url)),
    {
      type: "actions",
      block_id: "lobu_settings",
      elements: [linkButton(linkLabel(event), url, "lobu-settings")],
    },
  ];
}

type CapabilityRequestEvent = Extract<RequestEvent, { type: "capability_request" }>;

export function settingsBlocks(url: string): Block[] {
  return [
    section("Your personal settings for this agent (API keys, connected accounts, approvals):"),
    {
      type: "actions",
      block_id: "lobu_settings",
      elements: [linkButton("Open settings", url, "lobu-settings")],
    },
  ];
}
