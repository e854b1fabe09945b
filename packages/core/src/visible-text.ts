/**
 * Text as a person must see it before approving it: every character that would
 * be invisible, or that changes how the rest looks, is shown as a mark in
 * `⟦…⟧`. One function for every surface (Slack, Telegram, the settings page,
 * `lobu chat`, REST events), so what a person approves reads the same
 * everywhere. No imports: browsers and the CLI use it too.
 *
 * The marks are unambiguous: a literal `⟦` in the text is itself shown as a
 * mark, so every `⟦` a reader sees starts one. Nothing is dropped; runs are
 * shown with their length (`⟦␠×300⟧`).
 */

export const MARK_OPEN = "⟦";
export const MARK_CLOSE = "⟧";

/** Spaces inside a line (after other characters): a run this long or longer becomes `⟦␠×N⟧`. */
export const SPACE_RUN_MARK = 8;
/** Indentation (spaces at a line's start) is kept up to this depth, longer runs are marked. */
export const MAX_PLAIN_INDENT = 40;
/** This many line breaks in a row or more become `⟦↵×N⟧` between two real ones. */
export const LINE_BREAK_RUN_MARK = 3;
/** More combining marks than this on one character are shown one by one (they can hide text). */
export const MAX_COMBINING = 4;

/** Names of the invisible characters people meet most (bidi controls, zero-width, odd spaces). */
const NAMES: Record<number, string> = {
  160: "NBSP",
  173: "SOFT HYPHEN",
  847: "CGJ",
  1564: "ALM",
  4447: "HANGUL FILLER",
  4448: "HANGUL FILLER",
  6158: "MVS",
  8192: "EN QUAD",
  8193: "EM QUAD",
  8194: "EN SPACE",
  8195: "EM SPACE",
  8196: "3/EM SPACE",
  8197: "4/EM SPACE",
  8198: "6/EM SPACE",
  8199: "FIGURE SPACE",
  8200: "PUNCTUATION SPACE",
  8201: "THIN SPACE",
  8202: "HAIR SPACE",
  8203: "ZWSP",
  8204: "ZWNJ",
  8205: "ZWJ",
  8206: "LRM",
  8207: "RLM",
  8232: "LINE SEPARATOR",
  8233: "PARAGRAPH SEPARATOR",
  8234: "LRE",
  8235: "RLE",
  8236: "PDF",
  8237: "LRO",
  8238: "RLO",
  8239: "NNBSP",
  8287: "MMSP",
  8288: "WJ",
  8289: "FUNCTION APPLICATION",
  8290: "INVISIBLE TIMES",
  8291: "INVISIBLE SEPARATOR",
  8292: "INVISIBLE PLUS",
  8294: "LRI",
  8295: "RLI",
  8296: "FSI",
  8297: "PDI",
  12288: "IDEOGRAPHIC SPACE",
  12644: "HANGUL FILLER",
  65279: "BOM",
  65440: "HANGUL FILLER",
};

/** Short escapes for the control characters people know by them. */
const ESCAPES: Record<number, string> = {
  0: "\\0",
  7: "\\a",
  8: "\\b",
  9: "\\t",
  11: "\\v",
  12: "\\f",
  13: "\\r",
  27: "ESC",
};

/**
 * What visibleText looks at; everything else is copied as it is. Groups: a run
 * of spaces, a run of tabs, a run of line breaks, a run of visible combining
 * marks, a run of one hidden character. Hidden: controls (C0, DEL, C1), format
 * characters (bidi controls, zero-width, tags), private-use, unassigned and
 * surrogate code points, line and paragraph separators, every space but
 * U+0020, whatever Unicode says is ignorable by default (variation selectors,
 * fillers), and a literal `⟦`.
 */
const SPECIAL =
  /( +)|(\t+)|(\n{3,})|([\p{M}--\p{Default_Ignorable_Code_Point}]+)|(([[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}\p{Zs}\p{Default_Ignorable_Code_Point}\u27e6]--[ \n]])\6*)/gv;

function hex(cp: number): string {
  return cp.toString(16).toUpperCase().padStart(4, "0");
}

function mark(body: string): string {
  return `${MARK_OPEN}${body}${MARK_CLOSE}`;
}

/**
 * The mark for a run of `count` of one hidden code point (`⟦\t⟧`, `⟦ESC⟧`,
 * `⟦U+202E RLO⟧`, `⟦\x07⟧`; a run: `⟦U+00A0 NBSP×300⟧`).
 */
function codePointMark(cp: number, count: number): string {
  const times = count > 1 ? `×${count}` : "";
  const short = ESCAPES[cp];
  if (short) return mark(`${short}${times}`);
  if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
    return mark(`\\x${cp.toString(16).padStart(2, "0")}${times}`);
  const name = NAMES[cp];
  return mark(`${name ? `U+${hex(cp)} ${name}` : `U+${hex(cp)}`}${times}`);
}

/**
 * `text` with everything invisible made visible:
 *
 * - runs of spaces inside a line of SPACE_RUN_MARK or more, indentation deeper
 *   than MAX_PLAIN_INDENT, and spaces at the end of a line: `⟦␠×N⟧`;
 * - tabs: `⟦\t⟧` (a run: `⟦\t×N⟧`); CR `⟦\r⟧`, NUL `⟦\0⟧`, ESC (ANSI escape
 *   sequences) `⟦ESC⟧`, other controls `⟦\x07⟧`;
 * - bidi controls, zero-width characters, unusual spaces, tag characters,
 *   variation selectors and other invisible code points: `⟦U+202E RLO⟧`;
 *   a run of one of them (or of one control character) with its length,
 *   `⟦U+00A0 NBSP×300⟧`, so it cannot push what follows out of sight;
 * - LINE_BREAK_RUN_MARK or more line breaks in a row: `⟦↵×N⟧` on a line of its own;
 * - a character with more than MAX_COMBINING combining marks: its marks one by one;
 * - a literal `⟦`: `⟦U+27E6⟧`.
 *
 * Line breaks (LF) stay line breaks; everything else is unchanged. Only what
 * SPECIAL matches costs work, so long ordinary text goes through quickly.
 */
export function visibleText(text: string): string {
  return text.replace(
    SPECIAL,
    (
      match: string,
      spaces: string | undefined,
      tabs: string | undefined,
      breaks: string | undefined,
      combining: string | undefined,
      hidden: string | undefined,
      _one: string | undefined,
      offset: number,
    ) => {
      if (spaces) {
        const n = spaces.length;
        const lineStart = offset === 0 || text[offset - 1] === "\n";
        const end = offset + n;
        const atLineEnd = end === text.length || text[end] === "\n";
        const plain = lineStart ? n <= MAX_PLAIN_INDENT : n < SPACE_RUN_MARK;
        return plain && !atLineEnd ? spaces : mark(n === 1 ? "␠" : `␠×${n}`);
      }
      if (tabs) return mark(tabs.length === 1 ? "\\t" : `\\t×${tabs.length}`);
      if (breaks) return `\n${mark(`↵×${breaks.length}`)}\n`;
      if (combining) {
        const marks = Array.from(combining);
        return marks.length > MAX_COMBINING
          ? marks.map((c) => mark(`U+${hex(c.codePointAt(0)!)}`)).join("")
          : combining;
      }
      return codePointMark(match.codePointAt(0)!, Array.from(hidden ?? match).length);
    },
  );
}

/** Whether visibleText(`text`) would differ from `text` (the text has something hidden). */
export function hasHiddenCharacters(text: string): boolean {
  return visibleText(text) !== text;
}

const PLAIN_KEY = /^[A-Za-z_$][\w$.-]*$/;
/** Single-line strings that could be read as another type (or with edges a reader misses) are quoted. */
const NEEDS_QUOTES = /^$|^\s|\s$|^["'[{]|^(?:true|false|null|-?\d[\d.eE+-]*)$/;
const INDENT = "  ";

function keyText(key: string): string {
  return PLAIN_KEY.test(key) ? key : visibleText(JSON.stringify(key));
}

function indentLines(text: string, depth: number): string {
  const pad = INDENT.repeat(depth);
  return text
    .split("\n")
    .map((line) => pad + line)
    .join("\n");
}

/** One value after `key:` (inline) or below it (block), at nesting `depth`. */
function valueText(value: unknown, depth: number): { inline: string } | { block: string } {
  if (typeof value === "string") {
    if (value.includes("\n")) return { block: indentLines(visibleText(value), depth + 1) };
    return {
      inline: NEEDS_QUOTES.test(value) ? visibleText(JSON.stringify(value)) : visibleText(value),
    };
  }
  if (value === null || typeof value === "number" || typeof value === "boolean") {
    return { inline: JSON.stringify(value) };
  }
  if (value === undefined) return { inline: "(undefined)" };
  if (Array.isArray(value)) {
    if (value.length === 0) return { inline: "[]" };
    return { block: value.map((item) => listItem(item, depth + 1)).join("\n") };
  }
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return { inline: "{}" };
    return { block: fields(entries, depth + 1) };
  }
  return { inline: visibleText(String(value)) };
}

function field(key: string, value: unknown, depth: number): string {
  const rendered = valueText(value, depth);
  const head = `${INDENT.repeat(depth)}${keyText(key)}:`;
  return "inline" in rendered ? `${head} ${rendered.inline}` : `${head}\n${rendered.block}`;
}

function fields(entries: [string, unknown][], depth: number): string {
  return entries.map(([k, v]) => field(k, v, depth)).join("\n");
}

/** `- value` in a list; an object's first field goes on the dash's line. */
function listItem(item: unknown, depth: number): string {
  const pad = INDENT.repeat(depth);
  if (item && typeof item === "object" && !Array.isArray(item)) {
    const entries = Object.entries(item as Record<string, unknown>);
    if (entries.length > 0) {
      const body = fields(entries, depth + 1);
      return `${pad}- ${body.slice(pad.length + INDENT.length)}`;
    }
  }
  const rendered = valueText(item, depth);
  return "inline" in rendered ? `${pad}- ${rendered.inline}` : `${pad}-\n${rendered.block}`;
}

/**
 * A tool's input (any JSON value) as a person reads it before approving: one
 * `name: value` line per field, multi-line strings indented below their name,
 * nested objects and lists indented (YAML-like), every string through
 * visibleText. Strings that could be mistaken for another type are quoted.
 * Nothing is left out or shortened.
 */
export function inputText(input: unknown): string {
  if (input && typeof input === "object" && !Array.isArray(input)) {
    const entries = Object.entries(input as Record<string, unknown>);
    return entries.length ? fields(entries, 0) : "{}";
  }
  const rendered = valueText(input, -1);
  return "inline" in rendered ? rendered.inline : rendered.block;
}
