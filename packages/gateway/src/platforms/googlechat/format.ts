import { type MarkdownDialect, packUnits, renderMarkdown } from "../shared/markdown.ts";
import type { Part } from "../shared/turn-view.ts";

/** Google Chat takes at most 4,096 characters of text per message. */
export const MESSAGE_LIMIT = 4096;

/**
 * Agent Markdown in Google Chat's text formatting (`*bold*`, `_italic_`,
 * `~strike~`, `` `code` ``, ```` ``` ```` blocks, `<url|label>` links);
 * Chat has no headings or tables, so headings are bold and tables code blocks.
 * `<` in plain text would start a link or a mention, so it is shown as ‹.
 */
const plain = (s: string) => s.replace(/</g, "‹");

export const chatMarkdown: MarkdownDialect = {
  text: plain,
  strong: (inner) => (inner ? `*${inner}*` : ""),
  em: (inner) => (inner ? `_${inner}_` : ""),
  del: (inner) => (inner ? `~${inner}~` : ""),
  code: (s) => (s ? `\`${s.replace(/`/g, "ˋ")}\`` : ""),
  link: (href, inner) => {
    const url = href.replace(/[|>]/g, encodeURIComponent);
    const label = inner.replace(/[|>]/g, "∣");
    return label && label !== plain(href) ? `<${url}|${label}>` : url;
  },
  codeBlock: (code) => `\`\`\`\n${(code || " ").replace(/```/g, "ˋˋˋ")}\n\`\`\``,
  heading: (inner) => `*${inner}*`,
  quote: (inner) =>
    inner
      .split("\n")
      .map((line) => `> ${line}`)
      .join("\n"),
  rule: () => "──────────",
  toPlain: (markup) => markup,
  fromPlain: (text) => text,
};

/** Markdown as Google Chat messages, each within 4,096 characters. */
export function toChat(markdown: string, limit = MESSAGE_LIMIT): string[] {
  return packUnits(renderMarkdown(markdown, chatMarkdown), limit, (s) => s.length, chatMarkdown);
}

export function replyChunks(parts: Part[]): string[] {
  const units = parts.flatMap((p) => renderMarkdown(p.text, chatMarkdown));
  return packUnits(units, MESSAGE_LIMIT, (s) => s.length, chatMarkdown);
}
