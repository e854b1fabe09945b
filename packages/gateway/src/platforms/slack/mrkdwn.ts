import { type MarkdownDialect, markdownMessages, quoteLines, wrapIn } from "../shared/markdown.ts";

/** Slack needs only &, < and > escaped in mrkdwn; everything else is literal. */
export function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Agent Markdown in Slack's mrkdwn (Slack has no Markdown headings, lists or tables). */
export const mrkdwn: MarkdownDialect = {
  text: escapeMrkdwn,
  strong: wrapIn("*"),
  em: wrapIn("_"),
  del: wrapIn("~"),
  code: (s) => (s ? `\`${escapeMrkdwn(s).replace(/`/g, "ˋ")}\`` : ""),
  link: (href, inner) => {
    const url = escapeMrkdwn(href).replace(/\|/g, "%7C");
    const label = inner.replace(/\|/g, "∣");
    return label && label !== url ? `<${url}|${label}>` : `<${url}>`;
  },
  codeBlock: (code) => `\`\`\`\n${escapeMrkdwn(code).replace(/```/g, "ˋˋˋ")}\n\`\`\``,
  heading: (inner) => `*${inner}*`,
  quote: quoteLines,
  rule: () => "──────────",
  toPlain: (markup) => markup,
  fromPlain: (plain) => plain,
};

/** Slack's limit for one section block's text. */
export const SECTION_LIMIT = 3000;

/** Markdown as mrkdwn texts, each fitting one section block. */
export function toMrkdwnSections(markdown: string, limit = SECTION_LIMIT): string[] {
  return markdownMessages(markdown, mrkdwn, limit);
}
