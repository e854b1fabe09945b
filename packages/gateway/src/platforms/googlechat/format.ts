import {
  fencedCode,
  type MarkdownDialect,
  markdownMessages,
  partMessages,
  quoteLines,
  wrapIn,
} from "../shared/markdown.ts";
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
  strong: wrapIn("*"),
  em: wrapIn("_"),
  del: wrapIn("~"),
  code: (s) => (s ? `\`${s.replace(/`/g, "ˋ")}\`` : ""),
  link: (href, inner) => {
    const url = href.replace(/[|>]/g, encodeURIComponent);
    const label = inner.replace(/[|>]/g, "∣");
    return label && label !== plain(href) ? `<${url}|${label}>` : url;
  },
  codeBlock: (code) => fencedCode(code),
  heading: (inner) => `*${inner}*`,
  quote: quoteLines,
  rule: () => "──────────",
  toPlain: (markup) => markup,
  fromPlain: (text) => text,
};

/** Markdown as Google Chat messages, each within 4,096 characters. */
export function toChat(markdown: string, limit = MESSAGE_LIMIT): string[] {
  return markdownMessages(markdown, chatMarkdown, limit);
}

export function replyChunks(parts: Part[]): string[] {
  return partMessages(parts, chatMarkdown, MESSAGE_LIMIT);
}
