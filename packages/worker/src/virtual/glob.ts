import { RE2JS } from "re2js";

/**
 * Glob matching in linear time. Globs come from the agent (find's pattern, grep's glob),
 * and the usual compilers (minimatch, picomatch) turn them into backtracking JavaScript
 * regular expressions: `*(a|aa)*(a|aa)*(a|aa)c` against a 40-character name runs for
 * hours. Here a glob is translated to RE2 syntax and compiled with RE2JS, whose matching
 * time is linear in the path's length whatever the pattern; the translation itself is
 * one pass over the pattern and never expands braces.
 *
 * Semantics are minimatch's with `dot: true` (the virtual tier's find and grep always
 * included dotfiles): `*` and `?` stay within one path segment, `**` as a whole segment
 * spans any number of segments (none included), `[...]` classes (with `!`/`^` negation
 * and POSIX `[:alpha:]` names), `{a,b}` alternatives and `{1..9}` ranges, the extglobs
 * `*(…)`, `+(…)`, `?(…)`, `@(…)`, `\` escapes, and a leading `!` that negates the whole
 * pattern. The extglob `!(…)` has no linear-time equivalent and is refused.
 */

/** Longest pattern accepted: enough for any real glob, small enough to compile instantly. */
export const MAX_GLOB_LENGTH = 1024;
/** Largest `{a..b}` range, written out as alternatives. */
const MAX_BRACE_RANGE = 1000;

export class GlobError extends Error {
  constructor(pattern: string, reason: string) {
    super(`Invalid glob ${JSON.stringify(pattern.slice(0, 200))}: ${reason}`);
    this.name = "GlobError";
  }
}

const ESCAPE = /[\\.+*?()|[\]{}^$]/g;
const literal = (text: string) => text.replace(ESCAPE, "\\$&");

/** An open `{`, extglob `(` in the translation. */
interface Group {
  kind: "brace" | "ext";
  /** What closes it in the regex: `)`, `)*`, `)+`, `)?`. */
  close: string;
}

/** Translate one character class starting at `pattern[start] === "["`; null when unclosed. */
function translateClass(pattern: string, start: number): { regex: string; end: number } | null {
  let i = start + 1;
  let negate = false;
  if (pattern[i] === "!" || pattern[i] === "^") {
    negate = true;
    i++;
  }
  let body = "";
  let first = true;
  for (; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "]" && !first) {
      // Never match "/": classes stay within one segment, as in minimatch.
      return { regex: negate ? `[^/${body}]` : `[${body}]`, end: i };
    }
    first = false;
    if (c === "[" && pattern[i + 1] === ":") {
      const close = pattern.indexOf(":]", i + 2);
      const name = close > 0 ? pattern.slice(i + 2, close) : "";
      if (
        /^(alnum|alpha|ascii|blank|cntrl|digit|graph|lower|print|punct|space|upper|word|xdigit)$/.test(
          name,
        )
      ) {
        body += `[:${name}:]`;
        i = close + 1;
        continue;
      }
    }
    if (c === "\\" && i + 1 < pattern.length) {
      body += `\\${pattern[++i]}`;
      continue;
    }
    // "-" between two characters is a range; anything else is literal inside a class.
    body += c === "-" ? "-" : /[\]\\[^]/.test(c) ? `\\${c}` : c;
  }
  return null;
}

/** `{1..5}` / `{a..e}` as an alternation, or null when `body` is not a range. */
function braceRange(body: string): string | null {
  const m = /^(-?\d+)\.\.(-?\d+)$|^([A-Za-z])\.\.([A-Za-z])$/.exec(body);
  if (!m) return null;
  const [from, to] =
    m[1] !== undefined ? [Number(m[1]), Number(m[2])] : [m[3]!.charCodeAt(0), m[4]!.charCodeAt(0)];
  if (Math.abs(to - from) >= MAX_BRACE_RANGE) return null;
  const step = from <= to ? 1 : -1;
  const items: string[] = [];
  for (let n = from; n !== to + step; n += step)
    items.push(m[1] !== undefined ? String(n) : String.fromCharCode(n));
  return `(?:${items.map(literal).join("|")})`;
}

/** Index of the `}` that closes the brace at `start`, or -1. */
function closingBrace(pattern: string, start: number): number {
  let depth = 0;
  for (let i = start; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") i++;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}

/** The RE2 source for `pattern` (without a leading `!`), matching a whole path. */
export function globToRe2(pattern: string): string {
  let out = "";
  const groups: Group[] = [];
  const atSegmentStart = (i: number) => i === 0 || pattern[i - 1] === "/";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    const next = pattern[i + 1];
    // `**` as a whole segment (outside groups): any number of segments.
    if (c === "*" && next === "*" && groups.length === 0 && atSegmentStart(i)) {
      const after = pattern[i + 2];
      if (after === "/") {
        out += "(?:[^/]*/)*";
        i += 2;
        continue;
      }
      if (after === undefined) {
        out += ".*";
        i += 1;
        continue;
      }
    }
    if ("*?+@!".includes(c) && next === "(") {
      if (c === "!")
        throw new GlobError(
          pattern,
          "negated extglobs !(…) are not supported; match more and leave out the results you do not want",
        );
      out += "(?:";
      groups.push({
        kind: "ext",
        close: c === "@" ? ")" : c === "*" ? ")*" : c === "+" ? ")+" : ")?",
      });
      i++;
      continue;
    }
    switch (c) {
      case "\\":
        if (i + 1 < pattern.length) out += literal(pattern[++i]!);
        else out += "\\\\";
        break;
      case "*":
        while (pattern[i + 1] === "*") i++;
        out += "[^/]*";
        break;
      case "?":
        out += "[^/]";
        break;
      case "[": {
        const cls = translateClass(pattern, i);
        if (cls) {
          out += cls.regex;
          i = cls.end;
        } else out += "\\[";
        break;
      }
      case "{": {
        const end = closingBrace(pattern, i);
        const range = end > 0 ? braceRange(pattern.slice(i + 1, end)) : null;
        if (range) {
          out += range;
          i = end;
        } else if (end > 0 && /,/.test(pattern.slice(i + 1, end))) {
          out += "(?:";
          groups.push({ kind: "brace", close: ")" });
        } else out += "\\{"; // no alternatives: a literal brace, as in bash
        break;
      }
      case ",":
        out += groups.at(-1)?.kind === "brace" ? "|" : ",";
        break;
      case "|":
        out += groups.at(-1)?.kind === "ext" ? "|" : "\\|";
        break;
      case "}":
        if (groups.at(-1)?.kind === "brace") out += groups.pop()!.close;
        else out += "\\}";
        break;
      case ")":
        if (groups.at(-1)?.kind === "ext") out += groups.pop()!.close;
        else out += "\\)";
        break;
      default:
        out += literal(c);
    }
  }
  if (groups.length > 0)
    throw new GlobError(pattern, `unclosed ${groups.at(-1)!.kind === "brace" ? "{" : "("}`);
  // Like minimatch, a directory's trailing "/" does not stop a match.
  return pattern.endsWith("/") ? out : `${out}/?`;
}

export type GlobMatcher = (path: string) => boolean;

/** Compile `pattern` into a linear-time matcher of whole paths. */
export function compileGlob(pattern: string): GlobMatcher {
  if (pattern.length > MAX_GLOB_LENGTH)
    throw new GlobError(pattern, `longer than ${MAX_GLOB_LENGTH} characters`);
  const negated = pattern.startsWith("!") && pattern[1] !== "(";
  const body = negated ? pattern.slice(1) : pattern;
  let re: RE2JS;
  try {
    re = RE2JS.compile(globToRe2(body), RE2JS.DOTALL);
  } catch (error) {
    if (error instanceof GlobError) throw error;
    throw new GlobError(pattern, error instanceof Error ? error.message : String(error));
  }
  const matches = (path: string) => path.length > 0 && re.matches(path);
  return negated ? (path) => !matches(path) : matches;
}
