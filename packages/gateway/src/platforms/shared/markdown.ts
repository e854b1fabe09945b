import { marked, type Token, type Tokens } from "marked";

/**
 * Agent Markdown → a platform's markup. One walker (marked's lexer) with a
 * per-platform dialect; the output is a list of self-contained units (each
 * one's markup balanced) so long replies can be split between units without
 * breaking formatting.
 */

export interface MarkdownDialect {
  /** Escape plain text. */
  text(s: string): string;
  strong(inner: string): string;
  em(inner: string): string;
  del(inner: string): string;
  code(s: string): string;
  /** `inner` is already rendered; `href` is raw. */
  link(href: string, inner: string): string;
  /** A fenced block; `code` is raw. */
  codeBlock(code: string, lang?: string): string;
  heading(inner: string, depth: number): string;
  /** Every line of already rendered content, quoted. */
  quote(inner: string): string;
  rule(): string;
  /** Visible text of rendered markup (for splitting a unit too big for one message). */
  toPlain(markup: string): string;
  /** Markup for a piece of what toPlain returned. */
  fromPlain(plain: string): string;
}

/** `strong`, `em` and `del` of a dialect that marks them by `mark` on both sides (nothing when empty). */
export const wrapIn = (mark: string) => (inner: string) => (inner ? `${mark}${inner}${mark}` : "");

/** `quote` of a dialect that quotes with "> " at each line's start. */
export const quoteLines = (inner: string) =>
  inner
    .split("\n")
    .map((line) => `> ${line}`)
    .join("\n");

/** A ``` fence with an optional language tag; ``` inside the code is shown as ˋˋˋ so it cannot close it. */
export function fencedCode(code: string, lang?: string): string {
  const language = lang && /^[A-Za-z0-9_+#.-]{1,32}$/.test(lang) ? lang : "";
  return `\`\`\`${language}\n${(code || " ").replace(/```/g, "ˋˋˋ")}\n\`\`\``;
}

export interface MarkdownUnit {
  /** Rendered markup, balanced on its own. */
  text: string;
  /** What goes before this unit when it follows another in the same message. */
  sep: string;
  /** Preformatted content that can be re-split by lines (code blocks, tables). */
  pre?: { code: string; lang?: string };
}

export function renderMarkdown(markdown: string, d: MarkdownDialect): MarkdownUnit[] {
  const tokens = marked.lexer(markdown, { gfm: true });
  const units: MarkdownUnit[] = [];
  blocks(tokens, d, units, (u) => u);
  return units;
}

function blocks(
  tokens: Token[],
  d: MarkdownDialect,
  out: MarkdownUnit[],
  wrap: (s: string) => string,
): void {
  for (const token of tokens) {
    const push = (text: string, sep = "\n\n", pre?: MarkdownUnit["pre"]) => {
      if (text.trim() === "") return;
      out.push({ text: wrap(text), sep, ...(pre ? { pre } : {}) });
    };
    switch (token.type) {
      case "space":
      case "def":
        break;
      case "paragraph":
        push(inline((token as Tokens.Paragraph).tokens, d));
        break;
      case "text": {
        const t = token as Tokens.Text;
        push(t.tokens ? inline(t.tokens, d) : d.text(t.text));
        break;
      }
      case "heading": {
        const h = token as Tokens.Heading;
        push(d.heading(inline(h.tokens, d), h.depth));
        break;
      }
      case "code": {
        const c = token as Tokens.Code;
        const code = c.text.replace(/\n+$/, "");
        const lang = c.lang?.trim().split(/\s+/)[0] || undefined;
        push(d.codeBlock(code, lang), "\n\n", { code, ...(lang ? { lang } : {}) });
        break;
      }
      case "table": {
        const table = tableText(token as Tokens.Table);
        push(d.codeBlock(table), "\n\n", { code: table });
        break;
      }
      case "hr":
        push(d.rule());
        break;
      case "blockquote":
        blocks((token as Tokens.Blockquote).tokens, d, out, (s) => wrap(d.quote(s)));
        break;
      case "list": {
        const list = token as Tokens.List;
        const start = typeof list.start === "number" ? list.start : 1;
        list.items.forEach((item, i) => {
          const bullet = list.ordered ? `${start + i}. ` : "• ";
          push(listItem(item, bullet, d, ""), i === 0 ? "\n\n" : "\n");
        });
        break;
      }
      case "html":
        push(d.text((token as Tokens.HTML).text.trimEnd()));
        break;
      default:
        if ("tokens" in token && Array.isArray(token.tokens)) push(inline(token.tokens, d));
        else push(d.text(token.raw));
    }
  }
}

/** A list item as lines: its own text after the bullet, nested lists indented below. */
function listItem(
  item: Tokens.ListItem,
  bullet: string,
  d: MarkdownDialect,
  indent: string,
): string {
  const lines: string[] = [];
  let head = item.task ? (item.checked ? "☑ " : "☐ ") : "";
  let headDone = false;
  for (const token of item.tokens) {
    if (token.type === "checkbox") continue;
    if (token.type === "list") {
      const nested = token as Tokens.List;
      const start = typeof nested.start === "number" ? nested.start : 1;
      nested.items.forEach((child, i) => {
        lines.push(listItem(child, nested.ordered ? `${start + i}. ` : "◦ ", d, `${indent}    `));
      });
    } else if (token.type === "code") {
      const c = token as Tokens.Code;
      lines.push(d.codeBlock(c.text.replace(/\n+$/, "")));
    } else if (token.type === "text" || token.type === "paragraph") {
      const t = token as Tokens.Text;
      const rendered = t.tokens ? inline(t.tokens, d) : d.text(t.text);
      if (!headDone) {
        head += rendered;
        headDone = true;
      } else {
        lines.push(`${indent}  ${rendered}`);
      }
    } else if ("tokens" in token && Array.isArray(token.tokens)) {
      lines.push(`${indent}  ${inline(token.tokens, d)}`);
    }
  }
  return [`${indent}${d.text(bullet)}${head}`, ...lines].join("\n");
}

function inline(tokens: Token[], d: MarkdownDialect): string {
  let out = "";
  for (const token of tokens) {
    switch (token.type) {
      case "text": {
        const t = token as Tokens.Text;
        out += t.tokens ? inline(t.tokens, d) : d.text(t.text);
        break;
      }
      case "escape":
        out += d.text((token as Tokens.Escape).text);
        break;
      case "strong":
        out += d.strong(inline((token as Tokens.Strong).tokens, d));
        break;
      case "em":
        out += d.em(inline((token as Tokens.Em).tokens, d));
        break;
      case "del":
        out += d.del(inline((token as Tokens.Del).tokens, d));
        break;
      case "codespan":
        out += d.code((token as Tokens.Codespan).text);
        break;
      case "br":
        out += "\n";
        break;
      case "link": {
        const l = token as Tokens.Link;
        out += safeHref(l.href) ? d.link(l.href, inline(l.tokens, d)) : inline(l.tokens, d);
        break;
      }
      case "image": {
        const img = token as Tokens.Image;
        out += safeHref(img.href)
          ? d.link(img.href, d.text(img.text || img.href))
          : d.text(img.text);
        break;
      }
      case "html":
        out += d.text((token as Tokens.HTML).text);
        break;
      default:
        out += d.text(token.raw);
    }
  }
  return out;
}

/** Only web and mail links become links; anything else (javascript:, file:) stays text. */
export function safeHref(href: string): boolean {
  return /^(https?:\/\/|mailto:|tg:\/\/)/i.test(href);
}

/** A table as aligned monospace text (no platform renders Markdown tables). */
function tableText(table: Tokens.Table): string {
  const rows = [
    table.header.map((c) => plainInline(c.tokens)),
    ...table.rows.map((r) => r.map((c) => plainInline(c.tokens))),
  ];
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  const line = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join(" | ")
      .trimEnd();
  const [head, ...body] = rows;
  return [line(head ?? []), widths.map((w) => "-".repeat(w)).join("-|-"), ...body.map(line)].join(
    "\n",
  );
}

function plainInline(tokens: Token[]): string {
  let out = "";
  for (const token of tokens) {
    if ("tokens" in token && Array.isArray(token.tokens) && token.type !== "text")
      out += plainInline(token.tokens);
    else if (token.type === "br") out += " ";
    else out += "text" in token && typeof token.text === "string" ? token.text : token.raw;
  }
  return out;
}

/**
 * Pack units into chunks of at most `limit` (as `measure` counts). A unit too
 * big on its own is split: preformatted ones by lines (re-wrapped by the
 * dialect), others as escaped plain text at whitespace.
 */
export function packUnits(
  units: MarkdownUnit[],
  limit: number,
  measure: (markup: string) => number,
  d: MarkdownDialect,
): string[] {
  const chunks: string[] = [];
  let current = "";
  const add = (text: string, sep: string) => {
    const joined = current ? `${current}${sep}${text}` : text;
    if (measure(joined) <= limit) {
      current = joined;
      return;
    }
    if (current) chunks.push(current);
    current = text;
  };
  for (const unit of units) {
    if (measure(unit.text) <= limit) {
      add(unit.text, unit.sep);
      continue;
    }
    const pieces = unit.pre
      ? splitPre(unit.pre, limit, measure, d)
      : splitPlain(unit.text, limit, measure, d);
    pieces.forEach((piece, i) => {
      add(piece, i === 0 ? unit.sep : "\n");
    });
  }
  if (current) chunks.push(current);
  return chunks;
}

function splitPre(
  pre: NonNullable<MarkdownUnit["pre"]>,
  limit: number,
  measure: (s: string) => number,
  d: MarkdownDialect,
): string[] {
  const overhead = measure(d.codeBlock("", pre.lang));
  const room = Math.max(16, limit - overhead - 1);
  const out: string[] = [];
  let lines: string[] = [];
  const flush = () => {
    if (lines.length) out.push(d.codeBlock(lines.join("\n"), pre.lang));
    lines = [];
  };
  for (const raw of pre.code.split("\n")) {
    // A single overlong line is cut into pieces of `room` characters.
    for (let line = raw, first = true; first || line.length > 0; first = false) {
      const piece = line.slice(0, room);
      line = line.slice(room);
      if (measure(d.codeBlock([...lines, piece].join("\n"), pre.lang)) > limit) flush();
      lines.push(piece);
    }
  }
  flush();
  return out;
}

/** The visible text of a unit, cut at whitespace near the limit. */
function splitPlain(
  markup: string,
  limit: number,
  measure: (s: string) => number,
  d: MarkdownDialect,
): string[] {
  const plain = d.toPlain(markup);
  const out: string[] = [];
  let rest = plain;
  while (rest.length > 0) {
    let size = Math.min(rest.length, limit);
    while (size > 1 && measure(d.fromPlain(rest.slice(0, size))) > limit)
      size = Math.floor(size * 0.9);
    if (size < rest.length) {
      const space = rest.lastIndexOf(" ", size);
      const newline = rest.lastIndexOf("\n", size);
      const cut = Math.max(space, newline);
      if (cut > size / 2) size = cut + 1;
    }
    out.push(d.fromPlain(rest.slice(0, size).trimEnd()));
    rest = rest.slice(size);
  }
  return out.filter((s) => s.length > 0);
}

/** Visible text of markup this module produced (tags out, entities decoded). */
export function stripMarkup(markup: string): string {
  return markup
    .replace(/<[^>]*>/g, "")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, "&");
}

/** Cut text to `max` characters with an ellipsis, on a code point boundary. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const chars = Array.from(text.slice(0, Math.max(0, max - 1)));
  if (chars.join("").length > max - 1) chars.pop();
  return `${chars.join("")}…`;
}

/** Markdown as messages of a dialect whose length is its characters, each within `limit`. */
export function markdownMessages(markdown: string, d: MarkdownDialect, limit: number): string[] {
  return packUnits(renderMarkdown(markdown, d), limit, (s) => s.length, d);
}

/** A reply's parts (Markdown each) as such messages. */
export function partMessages(
  parts: { text: string }[],
  d: MarkdownDialect,
  limit: number,
): string[] {
  const units = parts.flatMap((p) => renderMarkdown(p.text, d));
  return packUnits(units, limit, (s) => s.length, d);
}
