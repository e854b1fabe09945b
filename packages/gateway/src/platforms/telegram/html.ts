import {
  type MarkdownDialect,
  packUnits,
  renderMarkdown,
  stripMarkup,
} from "../shared/markdown.ts";

/** Telegram's HTML parse mode needs &, < and > escaped (and " inside attributes). */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

const attr = (s: string) => escapeHtml(s).replace(/"/g, "&quot;");

/** Agent Markdown in Telegram's HTML subset (b, i, s, code, pre, a, blockquote). */
export const telegramHtml: MarkdownDialect = {
  text: escapeHtml,
  strong: (inner) => (inner ? `<b>${inner}</b>` : ""),
  em: (inner) => (inner ? `<i>${inner}</i>` : ""),
  del: (inner) => (inner ? `<s>${inner}</s>` : ""),
  code: (s) => (s ? `<code>${escapeHtml(s)}</code>` : ""),
  link: (href, inner) => `<a href="${attr(href)}">${inner || escapeHtml(href)}</a>`,
  codeBlock: (code, lang) => {
    const language = lang && /^[A-Za-z0-9_+#.-]{1,32}$/.test(lang) ? lang : undefined;
    const body = escapeHtml(code || " ");
    return language
      ? `<pre><code class="language-${language}">${body}</code></pre>`
      : `<pre>${body}</pre>`;
  },
  heading: (inner) => `<b>${inner}</b>`,
  // Telegram does not nest blockquotes: a quote inside a quote is flattened.
  quote: (inner) => `<blockquote>${inner.replace(/<\/?blockquote>/g, "")}</blockquote>`,
  rule: () => "──────────",
  toPlain: stripMarkup,
  fromPlain: escapeHtml,
};

/** Telegram counts a message's length after entity parsing: 4096 characters. */
export const MESSAGE_LIMIT = 4096;

/** Visible length of HTML this module produced, as Telegram counts it (UTF-16 units). */
export function visibleLength(html: string): number {
  return stripMarkup(html).length;
}

/** Markdown as Telegram HTML messages, each within Telegram's length limit. */
export function toTelegramHtml(markdown: string, limit = MESSAGE_LIMIT): string[] {
  return packUnits(renderMarkdown(markdown, telegramHtml), limit, visibleLength, telegramHtml);
}
