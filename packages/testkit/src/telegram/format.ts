/**
 * Telegram's text formatting: MarkdownV2, HTML and legacy Markdown parse modes,
 * with the Bot API's error messages, plus the server-side detection of
 * mentions, commands, hashtags and URLs. Offsets are UTF-16 code units (JS
 * string indices), as in the Bot API; error positions are UTF-8 byte offsets.
 */

export interface TgEntity {
  type: string;
  offset: number;
  length: number;
  url?: string;
  language?: string;
  custom_emoji_id?: string;
  user?: { id: number; is_bot: boolean; first_name: string };
}

export interface FormattedText {
  text: string;
  entities: TgEntity[];
}

/** A parse failure; `message` is what follows "Bad Request: can't parse entities: ". */
export class EntityParseError extends Error {}

function byteOffset(src: string, index: number): number {
  return Buffer.byteLength(src.slice(0, index));
}

/** Bot API entity type → the name Telegram uses in parse errors. */
const ERROR_NAME: Record<string, string> = {
  bold: "Bold",
  italic: "Italic",
  underline: "Underline",
  strikethrough: "Strikethrough",
  spoiler: "Spoiler",
  code: "Code",
  pre: "Pre",
  pre_code: "PreCode",
  text_link: "TextUrl",
  custom_emoji: "CustomEmoji",
  blockquote: "BlockQuote",
  expandable_blockquote: "ExpandableBlockQuote",
};

function reservedError(c: string): EntityParseError {
  return new EntityParseError(
    `Character '${c}' is reserved and must be escaped with the preceding '\\'`,
  );
}

/** Links Telegram accepts in text_link entities; others silently drop the entity. */
export function checkedLink(url: string): string | undefined {
  const trimmed = url.trim();
  if (!trimmed) return undefined;
  if (/^(https?|tg|ton|mailto):/i.test(trimmed)) {
    try {
      const parsed = new URL(trimmed);
      if (/^https?:$/.test(parsed.protocol) && !parsed.hostname) return undefined;
      return trimmed;
    } catch {
      return undefined;
    }
  }
  if (/^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}(:\d+)?([/?#].*)?$/i.test(trimmed))
    return `http://${trimmed}`;
  return undefined;
}

function mentionUserId(url: string): number | undefined {
  const match = /^tg:\/\/user\?id=(\d+)$/i.exec(url.trim());
  return match ? Number(match[1]) : undefined;
}

function linkEntity(offset: number, length: number, url: string): TgEntity | undefined {
  const userId = mentionUserId(url);
  if (userId !== undefined) {
    return {
      type: "text_mention",
      offset,
      length,
      user: { id: userId, is_bot: false, first_name: "" },
    };
  }
  const link = checkedLink(url);
  return link ? { type: "text_link", offset, length, url: link } : undefined;
}

interface Open {
  type: string;
  offset: number;
  srcIndex: number;
  argument?: string;
}

/** Whether the character at i is escapable by a preceding backslash (ASCII 1..126). */
function escapable(src: string, i: number): boolean {
  const code = src.charCodeAt(i);
  return code > 0 && code <= 126;
}

export function parseMarkdownV2(src: string): FormattedText {
  let out = "";
  const entities: TgEntity[] = [];
  const stack: Open[] = [];
  let haveBlockquote = false;
  let canStartBlockquote = true;

  /** Reads "(url)" right after position i (which is the closing "]"); returns the url and end index. */
  const readUrl = (i: number, what: string): { url: string; end: number } => {
    let j = i + 2;
    const begin = j;
    let url = "";
    while (j < src.length && src[j] !== ")") {
      if (src[j] === "\\" && escapable(src, j + 1)) {
        url += src[j + 1];
        j += 2;
        continue;
      }
      url += src[j++];
    }
    if (src[j] !== ")") {
      throw new EntityParseError(
        `Can't find end of ${what} at byte offset ${byteOffset(src, begin)}`,
      );
    }
    return { url, end: j };
  };

  for (let i = 0; i < src.length; i++) {
    const c = src[i] as string;
    if (c === "\\" && i + 1 < src.length && escapable(src, i + 1)) {
      i++;
      out += src[i];
      if (src[i] !== "\r") canStartBlockquote = src[i] === "\n";
      continue;
    }
    const top = stack.at(-1);
    const inCode = top?.type === "code" || top?.type === "pre";
    const reserved = inCode ? "`" : "_*[]()~`>#+-=|{}.!\n";
    if (!reserved.includes(c)) {
      out += c;
      if (c !== "\r") canStartBlockquote = false;
      continue;
    }

    let isEnd = false;
    if (top) {
      if (haveBlockquote && c === "\n" && (i + 1 === src.length || src[i + 1] !== ">"))
        isEnd = true;
      else {
        switch (top.type) {
          case "bold":
            isEnd = c === "*";
            break;
          case "italic":
            isEnd = c === "_" && src[i + 1] !== "_";
            break;
          case "code":
            isEnd = c === "`";
            break;
          case "pre":
            isEnd = c === "`" && src[i + 1] === "`" && src[i + 2] === "`";
            break;
          case "text_link":
          case "custom_emoji":
            isEnd = c === "]";
            break;
          case "underline":
            isEnd = c === "_" && src[i + 1] === "_";
            break;
          case "strikethrough":
            isEnd = c === "~";
            break;
          case "spoiler":
            isEnd = c === "|" && src[i + 1] === "|";
            break;
          default:
            isEnd = false;
        }
      }
    }

    if (!isEnd) {
      const srcIndex = i;
      let type: string;
      let argument: string | undefined;
      switch (c) {
        case "_":
          if (src[i + 1] === "_") {
            type = "underline";
            i++;
          } else type = "italic";
          break;
        case "*":
          type = "bold";
          break;
        case "~":
          type = "strikethrough";
          break;
        case "|":
          if (src[i + 1] !== "|") throw reservedError(c);
          type = "spoiler";
          i++;
          break;
        case "[":
          type = "text_link";
          break;
        case "`":
          if (src[i + 1] === "`" && src[i + 2] === "`") {
            i += 3;
            type = "pre";
            let langEnd = i;
            while (
              langEnd < src.length &&
              !/\s/.test(src[langEnd] as string) &&
              src[langEnd] !== "`"
            ) {
              langEnd++;
            }
            if (i !== langEnd && langEnd < src.length && src[langEnd] !== "`") {
              argument = src.slice(i, langEnd);
              i = langEnd;
            }
            // one leading line break after the fence is not part of the code
            if (src[i] === "\n" || src[i] === "\r") {
              if ((src[i + 1] === "\n" || src[i + 1] === "\r") && src[i] !== src[i + 1]) i += 2;
              else i++;
            }
            i--;
          } else type = "code";
          break;
        case "!":
          if (src[i + 1] !== "[") throw reservedError(c);
          type = "custom_emoji";
          i++;
          break;
        case "\n":
          out += "\n";
          canStartBlockquote = true;
          continue;
        case ">":
          if (!canStartBlockquote) throw reservedError(c);
          if (haveBlockquote) continue; // the ">" opening a further quoted line
          type = "blockquote";
          haveBlockquote = true;
          break;
        default:
          throw reservedError(c);
      }
      stack.push({ type, offset: out.length, srcIndex, ...(argument ? { argument } : {}) });
      continue;
    }

    // end of the innermost entity
    let open = stack.at(-1) as Open;
    let type = open.type;
    if (c === "\n" && type !== "blockquote") {
      // Only "||" right before the line break may end here: an expandable quote.
      const spoilerMark =
        type === "spoiler" &&
        (open.srcIndex === i - 2 || (open.srcIndex === i - 3 && src[i - 1] === "\r"));
      if (!spoilerMark) throw cantFindEnd(src, open);
      stack.pop();
      open = stack.at(-1) as Open;
      if (open.type !== "blockquote") throw cantFindEnd(src, open);
      type = "expandable_blockquote";
    }
    const length = out.length - open.offset;
    let entity: TgEntity | undefined;
    switch (type) {
      case "underline":
      case "spoiler":
        i++;
        entity = { type, offset: open.offset, length };
        break;
      case "pre":
        i += 2;
        entity = {
          type: "pre",
          offset: open.offset,
          length,
          ...(open.argument ? { language: open.argument } : {}),
        };
        break;
      case "text_link": {
        let url: string;
        if (src[i + 1] !== "(") url = out.slice(open.offset);
        else {
          const read = readUrl(i, "a URL");
          url = read.url;
          i = read.end;
        }
        entity = linkEntity(open.offset, length, url);
        break;
      }
      case "custom_emoji": {
        if (src[i + 1] !== "(") {
          throw new EntityParseError("Custom emoji entity must contain a tg://emoji URL");
        }
        const read = readUrl(i, "a custom emoji URL");
        i = read.end;
        const id = /^tg:\/\/emoji\?id=(\d+)$/i.exec(read.url)?.[1];
        if (!id) throw new EntityParseError("Custom emoji URL must have an emoji identifier");
        entity = { type, offset: open.offset, length, custom_emoji_id: id };
        break;
      }
      case "blockquote":
      case "expandable_blockquote":
        haveBlockquote = false;
        canStartBlockquote = true;
        entity = { type, offset: open.offset, length };
        out += "\n";
        break;
      default:
        entity = { type, offset: open.offset, length };
    }
    if (entity && entity.length > 0) entities.push(entity);
    stack.pop();
  }

  if (haveBlockquote) {
    let type = "blockquote";
    const open = stack.at(-1);
    if (open?.type === "spoiler" && open.srcIndex === src.length - 2) {
      stack.pop();
      type = "expandable_blockquote";
    }
    const quote = stack.at(-1);
    if (quote?.type === "blockquote") {
      const length = out.length - quote.offset;
      if (length > 0) entities.push({ type, offset: quote.offset, length });
      stack.pop();
    }
  }
  const unclosed = stack.at(-1);
  if (unclosed) throw cantFindEnd(src, unclosed);
  return { text: out, entities: sortEntities(entities) };
}

function cantFindEnd(src: string, open: Open): EntityParseError {
  const name =
    open.type === "pre" && open.argument ? "PreCode" : (ERROR_NAME[open.type] ?? open.type);
  return new EntityParseError(
    `Can't find end of ${name} entity at byte offset ${byteOffset(src, open.srcIndex)}`,
  );
}

const HTML_TAGS = new Set([
  "a",
  "b",
  "strong",
  "i",
  "em",
  "u",
  "ins",
  "s",
  "strike",
  "del",
  "span",
  "tg-spoiler",
  "tg-emoji",
  "code",
  "pre",
  "blockquote",
]);

/** &lt; &gt; &amp; &quot; and numeric references; anything else stays literal. */
function decodeHtmlEntity(src: string, i: number): { ch: string; end: number } | undefined {
  const match = /^&(?:#x([0-9a-fA-F]{1,8})|#([0-9]{1,8})|([a-zA-Z]+));?/.exec(src.slice(i, i + 16));
  if (!match) return undefined;
  let code: number | undefined;
  if (match[1]) code = Number.parseInt(match[1], 16);
  else if (match[2]) code = Number.parseInt(match[2], 10);
  else {
    const named: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"' };
    const ch = named[match[3] ?? ""];
    return ch ? { ch, end: i + match[0].length } : undefined;
  }
  if (code === undefined || code === 0 || code >= 0x10ffff) return undefined;
  return { ch: String.fromCodePoint(code), end: i + match[0].length };
}

interface OpenTag {
  tag: string;
  offset: number;
  attrs: Record<string, string>;
  srcIndex: number;
  /** Language from a nested <code class="language-x"> inside <pre>. */
  language?: string;
}

export function parseHtml(src: string): FormattedText {
  let out = "";
  const entities: TgEntity[] = [];
  const stack: OpenTag[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (c === "&") {
      const decoded = decodeHtmlEntity(src, i);
      if (decoded) {
        out += decoded.ch;
        i = decoded.end;
        continue;
      }
    }
    if (c !== "<") {
      out += c;
      i++;
      continue;
    }
    const begin = i;
    i++;
    if (src[i] === "/") {
      i++;
      const nameStart = i;
      while (i < src.length && !/\s/.test(src[i] as string) && src[i] !== ">") i++;
      const name = src.slice(nameStart, i).toLowerCase();
      while (i < src.length && /\s/.test(src[i] as string)) i++;
      if (src[i] !== ">") {
        throw new EntityParseError(`Unclosed end tag at byte offset ${byteOffset(src, begin)}`);
      }
      i++;
      const open = stack.pop();
      if (!open)
        throw new EntityParseError(`Unexpected end tag at byte offset ${byteOffset(src, begin)}`);
      if (name !== open.tag) {
        throw new EntityParseError(
          `Unmatched end tag at byte offset ${byteOffset(src, begin)}, expected "</${open.tag}>", found "</${name}>"`,
        );
      }
      const entity = closeTag(open, out, stack);
      if (entity) entities.push(entity);
      continue;
    }
    const nameStart = i;
    while (i < src.length && !/\s/.test(src[i] as string) && src[i] !== ">" && src[i] !== "/") i++;
    const tag = src.slice(nameStart, i).toLowerCase();
    if (!HTML_TAGS.has(tag)) {
      throw new EntityParseError(
        `Unsupported start tag "${tag}" at byte offset ${byteOffset(src, begin)}`,
      );
    }
    const attrs: Record<string, string> = {};
    for (;;) {
      while (i < src.length && /\s/.test(src[i] as string)) i++;
      if (i >= src.length) {
        throw new EntityParseError(`Unclosed start tag at byte offset ${byteOffset(src, begin)}`);
      }
      if (src[i] === ">") break;
      const attrStart = i;
      while (i < src.length && !/[\s=>]/.test(src[i] as string)) i++;
      const attr = src.slice(attrStart, i).toLowerCase();
      if (!attr) {
        throw new EntityParseError(
          `Empty attribute name in the tag "${tag}" at byte offset ${byteOffset(src, begin)}`,
        );
      }
      while (i < src.length && /\s/.test(src[i] as string)) i++;
      if (src[i] !== "=") {
        attrs[attr] = ""; // a flag such as <blockquote expandable>
        continue;
      }
      i++;
      while (i < src.length && /\s/.test(src[i] as string)) i++;
      if (i >= src.length) {
        throw new EntityParseError(`Unclosed start tag at byte offset ${byteOffset(src, begin)}`);
      }
      let value = "";
      const quote = src[i];
      if (quote === '"' || quote === "'") {
        i++;
        while (i < src.length && src[i] !== quote) {
          const decoded = src[i] === "&" ? decodeHtmlEntity(src, i) : undefined;
          if (decoded) {
            value += decoded.ch;
            i = decoded.end;
          } else value += src[i++];
        }
        if (i >= src.length) {
          throw new EntityParseError(`Unclosed start tag at byte offset ${byteOffset(src, begin)}`);
        }
        i++;
      } else {
        const tokenStart = i;
        while (i < src.length && /[A-Za-z0-9.-]/.test(src[i] as string)) i++;
        value = src.slice(tokenStart, i).toLowerCase();
        if (i < src.length && !/[\s>]/.test(src[i] as string)) {
          throw new EntityParseError(
            `Unexpected end of name token at byte offset ${byteOffset(src, tokenStart)}`,
          );
        }
      }
      attrs[attr] = value;
    }
    i++; // ">"
    if (tag === "span" && attrs.class !== "tg-spoiler") {
      throw new EntityParseError(
        `Tag "span" must have class "tg-spoiler" at byte offset ${byteOffset(src, begin)}`,
      );
    }
    if (tag === "tg-emoji" && !/^\d+$/.test(attrs["emoji-id"] ?? "")) {
      throw new EntityParseError(
        `Tag "tg-emoji" must have attribute "emoji-id" at byte offset ${byteOffset(src, begin)}`,
      );
    }
    stack.push({ tag, offset: out.length, attrs, srcIndex: begin });
  }
  const unclosed = stack.at(-1);
  if (unclosed) {
    throw new EntityParseError(`Can't find end tag corresponding to start tag "${unclosed.tag}"`);
  }
  return { text: out, entities: sortEntities(entities) };
}

/** The entity a closing tag produces (none for empty ones or a <code> merged into <pre>). */
function closeTag(open: OpenTag, out: string, stack: OpenTag[]): TgEntity | undefined {
  const offset = open.offset;
  const length = out.length - offset;
  if (length <= 0) return undefined;
  switch (open.tag) {
    case "b":
    case "strong":
      return { type: "bold", offset, length };
    case "i":
    case "em":
      return { type: "italic", offset, length };
    case "u":
    case "ins":
      return { type: "underline", offset, length };
    case "s":
    case "strike":
    case "del":
      return { type: "strikethrough", offset, length };
    case "span":
    case "tg-spoiler":
      return { type: "spoiler", offset, length };
    case "tg-emoji":
      return {
        type: "custom_emoji",
        offset,
        length,
        custom_emoji_id: open.attrs["emoji-id"] ?? "",
      };
    case "a":
      return linkEntity(offset, length, open.attrs.href || out.slice(offset));
    case "code": {
      const parent = stack.at(-1);
      const language = /^language-(.+)$/.exec(open.attrs.class ?? "")?.[1];
      // <pre><code class="language-x"> is one pre entity with a language.
      if (parent?.tag === "pre" && parent.offset === offset && language) {
        parent.language = language;
        return undefined;
      }
      return { type: "code", offset, length };
    }
    case "pre":
      return { type: "pre", offset, length, ...(open.language ? { language: open.language } : {}) };
    case "blockquote":
      return {
        type: "expandable" in open.attrs ? "expandable_blockquote" : "blockquote",
        offset,
        length,
      };
    default:
      return undefined;
  }
}

/** Legacy "Markdown" mode: *bold* _italic_ `code` ```pre``` [text](url), no nesting. */
export function parseMarkdownLegacy(src: string): FormattedText {
  let out = "";
  const entities: TgEntity[] = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i] as string;
    if (c === "\\" && "_*`[".includes(src[i + 1] ?? "")) {
      out += src[++i];
      continue;
    }
    if (!"_*`[".includes(c)) {
      out += c;
      continue;
    }
    const begin = i;
    const fail = () =>
      new EntityParseError(
        `Can't find end of the entity starting at byte offset ${byteOffset(src, begin)}`,
      );
    if (c === "`" && src.startsWith("```", i)) {
      let j = i + 3;
      let language = "";
      const langEnd = src.slice(j).search(/[\s`]/);
      if (langEnd > 0 && src[j + langEnd] !== "`") {
        language = src.slice(j, j + langEnd);
        j += langEnd;
      }
      if (src[j] === "\n") j++;
      const end = src.indexOf("```", j);
      if (end < 0) throw fail();
      const body = src.slice(j, end);
      if (body.length > 0) {
        entities.push({
          type: "pre",
          offset: out.length,
          length: body.length,
          ...(language ? { language } : {}),
        });
      }
      out += body;
      i = end + 2;
      continue;
    }
    const close = c === "[" ? "]" : c;
    const end = src.indexOf(close, i + 1);
    if (end < 0) throw fail();
    const body = src.slice(i + 1, end);
    const offset = out.length;
    out += body;
    i = end;
    if (c === "[") {
      let url = body;
      if (src[end + 1] === "(") {
        const urlEnd = src.indexOf(")", end + 2);
        if (urlEnd < 0) throw fail();
        url = src.slice(end + 2, urlEnd);
        i = urlEnd;
      }
      const entity = body.length ? linkEntity(offset, body.length, url) : undefined;
      if (entity) entities.push(entity);
      continue;
    }
    if (body.length > 0) {
      const type = c === "*" ? "bold" : c === "_" ? "italic" : "code";
      entities.push({ type, offset, length: body.length });
    }
  }
  return { text: out, entities: sortEntities(entities) };
}

export function sortEntities(entities: TgEntity[]): TgEntity[] {
  return entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
}

const WORD = /[\p{L}\p{N}_]/u;

/** Entities the server detects in plain text: mentions, commands, hashtags, URLs, emails. */
export function detectEntities(text: string): TgEntity[] {
  const found: TgEntity[] = [];
  const before = (i: number) => (i > 0 ? (text[i - 1] as string) : "");
  for (const m of text.matchAll(/@([a-zA-Z0-9_]{3,32})/g)) {
    const after = text[m.index + m[0].length] ?? "";
    if (WORD.test(before(m.index)) || WORD.test(after)) continue;
    found.push({ type: "mention", offset: m.index, length: m[0].length });
  }
  for (const m of text.matchAll(/\/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?/g)) {
    const prev = before(m.index);
    const after = text[m.index + m[0].length] ?? "";
    if (WORD.test(prev) || "/<>".includes(prev || "x")) continue;
    if (WORD.test(after) || (after && "/<>".includes(after))) continue;
    found.push({ type: "bot_command", offset: m.index, length: m[0].length });
  }
  for (const m of text.matchAll(/#([\p{L}\p{N}_]{1,256})/gu)) {
    if (WORD.test(before(m.index)) || text[m.index + m[0].length] === "#") continue;
    if (!/\p{L}/u.test(m[1] ?? "")) continue;
    found.push({ type: "hashtag", offset: m.index, length: m[0].length });
  }
  for (const m of text.matchAll(/\bhttps?:\/\/[^\s<>"]+|\bwww\.[^\s<>"]+/gi)) {
    const url = m[0].replace(/[.,;:!?)'"\]]+$/, "");
    found.push({ type: "url", offset: m.index, length: url.length });
  }
  for (const m of text.matchAll(
    /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g,
  )) {
    found.push({ type: "email", offset: m.index, length: m[0].length });
  }
  // An email's local part is not also a mention; keep the longer match on overlap.
  const kept: TgEntity[] = [];
  for (const e of found.sort((a, b) => a.offset - b.offset || b.length - a.length)) {
    const last = kept.at(-1);
    if (last && e.offset < last.offset + last.length) continue;
    kept.push(e);
  }
  return kept;
}

/** Formatted entities win; detected ones inside code, pre or links are dropped. */
export function withDetectedEntities(formatted: FormattedText): TgEntity[] {
  const opaque = formatted.entities.filter((e) =>
    ["code", "pre", "text_link", "text_mention", "custom_emoji"].includes(e.type),
  );
  const detected = detectEntities(formatted.text).filter(
    (d) => !opaque.some((o) => d.offset < o.offset + o.length && o.offset < d.offset + d.length),
  );
  return sortEntities([...formatted.entities, ...detected]);
}

/** Telegram trims surrounding whitespace from message text and shifts entities to match. */
export function trimFormatted(formatted: FormattedText): FormattedText {
  const leading = formatted.text.length - formatted.text.trimStart().length;
  const text = formatted.text.trim();
  const entities: TgEntity[] = [];
  for (const e of formatted.entities) {
    const start = Math.max(e.offset - leading, 0);
    const end = Math.min(e.offset + e.length - leading, text.length);
    if (end > start) entities.push({ ...e, offset: start, length: end - start });
  }
  return { text, entities };
}

export function parseFormatted(text: string, mode: string | undefined): FormattedText {
  switch (mode) {
    case undefined:
    case "":
      return { text, entities: [] };
    case "MarkdownV2":
      return parseMarkdownV2(text);
    case "HTML":
      return parseHtml(text);
    case "Markdown":
      return parseMarkdownLegacy(text);
    default:
      throw new Error(`unsupported parse_mode ${mode}`);
  }
}
