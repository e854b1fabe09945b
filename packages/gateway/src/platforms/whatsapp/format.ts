import {
  type MarkdownDialect,
  markdownMessages,
  partMessages,
  quoteLines,
  safeHref,
  wrapIn,
} from "../shared/markdown.ts";
import type { Part } from "../shared/turn-view.ts";
import { TEXT_LIMIT } from "./payloads.ts";

/**
 * Agent Markdown in WhatsApp's formatting: *bold*, _italic_, ~strike~,
 * `code`, ```blocks``` and "> " quotes. WhatsApp has no link markup (it
 * links URLs itself) and no escape character, so text stays as written.
 */
export const whatsappText: MarkdownDialect = {
  text: (s) => s,
  strong: wrapIn("*"),
  em: wrapIn("_"),
  del: wrapIn("~"),
  code: (s) => (s ? `\`${s}\`` : ""),
  link: (href, inner) =>
    !inner || inner === href || !safeHref(href) ? href : `${inner} (${href})`,
  codeBlock: (code) => `\`\`\`\n${code || " "}\n\`\`\``,
  heading: (inner) => `*${inner}*`,
  quote: quoteLines,
  rule: () => "──────────",
  toPlain: (markup) => markup,
  fromPlain: (plain) => plain,
};

/** Markdown as WhatsApp text messages, each within `limit` characters. */
export function toWhatsAppText(markdown: string, limit = TEXT_LIMIT): string[] {
  return markdownMessages(markdown, whatsappText, limit);
}

/** A reply's parts as WhatsApp text messages of at most 4096 characters. */
export function replyChunks(parts: Part[]): string[] {
  return partMessages(parts, whatsappText, TEXT_LIMIT);
}
