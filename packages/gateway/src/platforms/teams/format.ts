import {
  fencedCode,
  type MarkdownDialect,
  markdownMessages,
  partMessages,
  quoteLines,
  renderMarkdown,
  wrapIn,
} from "../shared/markdown.ts";
import type { Part } from "../shared/turn-view.ts";

/**
 * Teams accepts about 28 KB per message; replies are split well below that,
 * at 4,000 characters, where a chat message is still readable.
 */
export const MESSAGE_LIMIT = 4000;

/** Markup characters, HTML (Teams renders some) and block markers at a line start are escaped. */
const escapeMarkup = (s: string) =>
  s
    .replace(/([\\*_~`[\]])/g, "\\$1")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/^([#-])/gm, "\\$1");
const unescapeMarkup = (s: string) =>
  s
    .replace(/\\([\\*_~`[\]#-])/g, "$1")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");

/** Agent Markdown in the Markdown Teams renders (textFormat "markdown"). */
export const teamsMarkdown: MarkdownDialect = {
  text: escapeMarkup,
  strong: wrapIn("**"),
  em: wrapIn("*"),
  del: wrapIn("~~"),
  code: (s) => (s ? `\`${s.replace(/`/g, "ˋ")}\`` : ""),
  link: (href, inner) =>
    `[${inner || escapeMarkup(href)}](${href.replace(/[()\s]/g, encodeURIComponent)})`,
  codeBlock: fencedCode,
  heading: (inner, depth) => (depth <= 3 ? `${"#".repeat(depth)} ${inner}` : `**${inner}**`),
  quote: quoteLines,
  rule: () => "---",
  toPlain: unescapeMarkup,
  fromPlain: escapeMarkup,
};

/** Markdown as Teams messages, each within the limit. */
export function toTeams(markdown: string, limit = MESSAGE_LIMIT): string[] {
  return markdownMessages(markdown, teamsMarkdown, limit);
}

export function replyChunks(parts: Part[]): string[] {
  return partMessages(parts, teamsMarkdown, MESSAGE_LIMIT);
}

/** Markdown as the plain text of an Adaptive Card TextBlock (which renders little Markdown). */
export function cardText(markdown: string): string {
  return renderMarkdown(markdown, teamsMarkdown)
    .map((u) => unescapeMarkup(u.text.replace(/\*\*|~~|`/g, "")))
    .join("\n\n");
}
