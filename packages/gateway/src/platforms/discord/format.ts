import {
  fencedCode,
  type MarkdownDialect,
  markdownMessages,
  partMessages,
  quoteLines,
  wrapIn,
} from "../shared/markdown.ts";
import type { Part } from "../shared/turn-view.ts";

/** Discord counts at most 2,000 characters per message. */
export const MESSAGE_LIMIT = 2000;

/** Markup characters anywhere, and block markers at the start of a line, are escaped. */
const escapeMarkup = (s: string) => s.replace(/([\\*_~`|])/g, "\\$1").replace(/^([>#-])/gm, "\\$1");
const unescapeMarkup = (s: string) => s.replace(/\\([\\*_~`|>#-])/g, "$1");

/** Agent Markdown in Discord's Markdown (it renders most of it; tables become code blocks). */
export const discordMarkdown: MarkdownDialect = {
  text: (s) => escapeMarkup(s).replace(/@(everyone|here)/g, "@\u200b$1"),
  strong: wrapIn("**"),
  em: wrapIn("*"),
  del: wrapIn("~~"),
  code: (s) => (s ? `\`${s.replace(/`/g, "ˋ")}\`` : ""),
  link: (href, inner) =>
    inner && inner !== escapeMarkup(href) ? `[${inner}](<${href}>)` : `<${href}>`,
  codeBlock: fencedCode,
  heading: (inner, depth) => (depth <= 3 ? `${"#".repeat(depth)} ${inner}` : `**${inner}**`),
  quote: quoteLines,
  rule: () => "──────────",
  toPlain: unescapeMarkup,
  fromPlain: escapeMarkup,
};

/** Markdown as Discord messages, each within 2,000 characters. */
export function toDiscord(markdown: string, limit = MESSAGE_LIMIT): string[] {
  return markdownMessages(markdown, discordMarkdown, limit);
}

export function replyChunks(parts: Part[]): string[] {
  return partMessages(parts, discordMarkdown, MESSAGE_LIMIT);
}
