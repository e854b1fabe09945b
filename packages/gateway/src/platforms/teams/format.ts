import { type MarkdownDialect, packUnits, renderMarkdown } from "../shared/markdown.ts";
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
  strong: (inner) => (inner ? `**${inner}**` : ""),
  em: (inner) => (inner ? `*${inner}*` : ""),
  del: (inner) => (inner ? `~~${inner}~~` : ""),
  code: (s) => (s ? `\`${s.replace(/`/g, "ˋ")}\`` : ""),
  link: (href, inner) =>
    `[${inner || escapeMarkup(href)}](${href.replace(/[()\s]/g, encodeURIComponent)})`,
  codeBlock: (code, lang) => {
    const language = lang && /^[A-Za-z0-9_+#.-]{1,32}$/.test(lang) ? lang : "";
    return `\`\`\`${language}\n${(code || " ").replace(/```/g, "ˋˋˋ")}\n\`\`\``;
  },
  heading: (inner, depth) => (depth <= 3 ? `${"#".repeat(depth)} ${inner}` : `**${inner}**`),
  quote: (inner) =>
    inner
      .split("\n")
      .map((line) => `> ${line}`)
      .join("\n"),
  rule: () => "---",
  toPlain: unescapeMarkup,
  fromPlain: escapeMarkup,
};

/** Markdown as Teams messages, each within the limit. */
export function toTeams(markdown: string, limit = MESSAGE_LIMIT): string[] {
  return packUnits(renderMarkdown(markdown, teamsMarkdown), limit, (s) => s.length, teamsMarkdown);
}

export function replyChunks(parts: Part[]): string[] {
  const units = parts.flatMap((p) => renderMarkdown(p.text, teamsMarkdown));
  return packUnits(units, MESSAGE_LIMIT, (s) => s.length, teamsMarkdown);
}

/** Markdown as the plain text of an Adaptive Card TextBlock (which renders little Markdown). */
export function cardText(markdown: string): string {
  return renderMarkdown(markdown, teamsMarkdown)
    .map((u) => unescapeMarkup(u.text.replace(/\*\*|~~|`/g, "")))
    .join("\n\n");
}
