import { type MarkdownDialect, packUnits, renderMarkdown, safeHref } from "../shared/markdown.ts";
import type { Part } from "../shared/turn-view.ts";
import { TEXT_LIMIT } from "./payloads.ts";

/**
 * Agent Markdown in WhatsApp's formatting: *bold*, _italic_, ~strike~,
 * `code`, ```blocks``` and "> " quotes. WhatsApp has no link markup (it
 * links URLs itself) and no escape character, so text stays as written.
 */
export const whatsappText: MarkdownDialect = {
  text: (s) => s,
  strong: (inner) => (inner ? `*${inner}*` : ""),
  em: (inner) => (inner ? `_${inner}_` : ""),
  del: (inner) => (inner ? `~${inner}~` : ""),
  code: (s) => (s ? `\`${s}\`` : ""),
  link: (href, inner) =>
    !inner || inner === href || !safeHref(href) ? href : `${inner} (${href})`,
  codeBlock: (code) => `\`\`\`\n${code || " "}\n\`\`\``,
  heading: (inner) => `*${inner}*`,
  quote: (inner) =>
    inner
      .split("\n")
      .map((line) => `> ${line}`)
      .join("\n"),
  rule: () => "──────────",
  toPlain: (markup) => markup,
  fromPlain: (plain) => plain,
};

/** Markdown as WhatsApp text messages, each within `limit` characters. */
export function toWhatsAppText(markdown: string, limit = TEXT_LIMIT): string[] {
  return packUnits(renderMarkdown(markdown, whatsappText), limit, (s) => s.length, whatsappText);
}

/** A reply's parts as WhatsApp text messages of at most 4096 characters. */
export function replyChunks(parts: Part[]): string[] {
  const units = parts.flatMap((p) => renderMarkdown(p.text, whatsappText));
  return packUnits(units, TEXT_LIMIT, (s) => s.length, whatsappText);
}
