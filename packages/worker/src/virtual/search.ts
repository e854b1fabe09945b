import { posix } from "node:path";
import type { IFileSystem } from "just-bash";
import { RE2JS } from "re2js";
import { compileGlob, type GlobMatcher } from "./glob.ts";

/**
 * The work behind the virtual tier's find and grep tools. It runs on a shell thread (see
 * shell-thread.ts), never on the pool's main thread, and every dimension of it is bounded:
 * entries walked, directory depth, bytes of each file, matches, context lines and bytes
 * of output. Patterns are matched in linear time (RE2 semantics for regexes, glob.ts for
 * globs), so no input can make one search backtrack for ever.
 */

/** Directories pi's own find/grep skip; kept for the same results on the virtual tier. */
export const DEFAULT_IGNORES = ["**/node_modules/**", "**/.git/**"];

/** Characters of one output line before it is cut (pi's GREP_MAX_LINE_LENGTH). */
export const MAX_LINE_CHARS = 500;

export interface WalkLimits {
  /** Entries (files, directories, links) looked at before the walk stops. */
  maxEntries: number;
  /** Directory levels below the root entered. */
  maxDepth: number;
}

export interface WalkStats {
  entries: number;
  /** Set when maxEntries or maxDepth cut the walk short. */
  capped?: "entries" | "depth";
}

interface WalkEntry {
  path: string;
  /** Relative to the walk root, posix. */
  rel: string;
  isDirectory: boolean;
  isFile: boolean;
  size: number;
}

function abortError(): Error {
  return new Error("Operation aborted");
}

/**
 * Depth-first walk in name order, not following symlinks (like rg and fd). Directories
 * matching an ignore glob are neither yielded nor entered.
 */
export async function* walk(
  fs: IFileSystem,
  root: string,
  options: {
    ignore?: readonly string[];
    signal?: AbortSignal;
    limits: WalkLimits;
    stats: WalkStats;
  },
): AsyncGenerator<WalkEntry> {
  const ignore = (options.ignore ?? DEFAULT_IGNORES).map(compileGlob);
  const ignored = (rel: string) => ignore.some((matches) => matches(`${rel}/_`));
  const { limits, stats } = options;
  const stack: Array<{ dir: string; depth: number }> = [{ dir: root, depth: 0 }];
  while (stack.length > 0) {
    if (options.signal?.aborted) throw abortError();
    const { dir, depth } = stack.pop()!;
    let names: string[];
    try {
      names = (await fs.readdir(dir)).sort();
    } catch {
      continue;
    }
    const subdirs: string[] = [];
    for (const name of names) {
      if (stats.entries >= limits.maxEntries) {
        stats.capped = "entries";
        return;
      }
      stats.entries++;
      const path = dir === "/" ? `/${name}` : `${dir}/${name}`;
      let st: Awaited<ReturnType<IFileSystem["lstat"]>>;
      try {
        st = await fs.lstat(path);
      } catch {
        continue;
      }
      const rel = posix.relative(root, path);
      if (st.isDirectory && ignored(rel)) continue;
      yield { path, rel, isDirectory: st.isDirectory, isFile: st.isFile, size: st.size };
      if (!st.isDirectory) continue;
      if (depth + 1 > limits.maxDepth) stats.capped ??= "depth";
      else subdirs.push(path);
    }
    for (let i = subdirs.length - 1; i >= 0; i--)
      stack.push({ dir: subdirs[i]!, depth: depth + 1 });
  }
}

/** fd-style matcher of walk entries for `pattern` (see globFiles). */
function entryMatcher(pattern: string): (e: WalkEntry) => boolean {
  if (!pattern.includes("/")) {
    const name = compileGlob(pattern);
    return (e) => name(posix.basename(e.rel));
  }
  if (pattern.startsWith("/")) {
    const absolute = compileGlob(pattern);
    return (e) => absolute(e.path);
  }
  const relative = compileGlob(pattern);
  const anywhere: GlobMatcher | undefined = pattern.startsWith("**/")
    ? undefined
    : compileGlob(`**/${pattern}`);
  return (e) => relative(e.rel) || (anywhere?.(e.rel) ?? false);
}

export interface GlobQuery {
  pattern: string;
  ignore?: readonly string[];
  /** Results returned at most. */
  limit: number;
  /** Stop collecting once the listed paths take this many bytes. */
  maxOutputBytes: number;
  walk: WalkLimits;
  signal?: AbortSignal;
}

export interface GlobResult {
  /** Absolute paths, directories with a trailing "/". */
  paths: string[];
  limitReached: boolean;
  bytesCapped: boolean;
  walk: WalkStats;
}

/**
 * fd-style glob: a pattern without "/" matches the file name anywhere below the root; one
 * with "/" matches the path relative to the root (or, when it starts with "/", the
 * absolute path).
 */
export async function globFiles(
  fs: IFileSystem,
  root: string,
  query: GlobQuery,
): Promise<GlobResult> {
  const matches = entryMatcher(query.pattern);
  const stats: WalkStats = { entries: 0 };
  const paths: string[] = [];
  let bytes = 0;
  for await (const entry of walk(fs, root, {
    ignore: query.ignore,
    signal: query.signal,
    limits: query.walk,
    stats,
  })) {
    if (!matches(entry)) continue;
    const path = entry.isDirectory ? `${entry.path}/` : entry.path;
    paths.push(path);
    bytes += Buffer.byteLength(path) + 1;
    if (paths.length >= query.limit)
      return { paths, limitReached: true, bytesCapped: false, walk: stats };
    if (bytes > query.maxOutputBytes)
      return { paths, limitReached: false, bytesCapped: true, walk: stats };
  }
  return { paths, limitReached: false, bytesCapped: false, walk: stats };
}

export interface GrepQuery {
  pattern: string;
  ignoreCase?: boolean;
  literal?: boolean;
  /** rg-style --glob: without "/" it matches file names, with "/" paths below the root. */
  glob?: string;
  limit: number;
  /** Lines shown before and after each match. */
  context: number;
  /** Files larger than this are skipped (like binaries). */
  maxFileBytes: number;
  /** Stop once the output lines take this many bytes. */
  maxOutputBytes: number;
  walk: WalkLimits;
  signal?: AbortSignal;
}

export interface GrepResult {
  /** Output lines: `rel:n: text` for matches, `rel-n- text` for context. */
  lines: string[];
  matches: number;
  limitReached: boolean;
  bytesCapped: boolean;
  linesTruncated: boolean;
  walk: WalkStats;
}

/** Longest regex accepted: RE2 compiles in time linear in the pattern, but not for free. */
export const MAX_PATTERN_LENGTH = 4096;

/**
 * Compile with RE2 semantics (linear time, the same family as ripgrep's regex engine):
 * in a process shared by hundreds of sessions one catastrophic backtracking pattern
 * must not stall everyone.
 */
export function compilePattern(pattern: string, ignoreCase = false, literal = false): RE2JS {
  if (pattern.length > MAX_PATTERN_LENGTH)
    throw new Error(
      `The pattern is ${pattern.length} characters long; the limit is ${MAX_PATTERN_LENGTH}. Search for a shorter, more specific part.`,
    );
  try {
    return RE2JS.compile(
      literal ? RE2JS.quote(pattern) : pattern,
      ignoreCase ? RE2JS.CASE_INSENSITIVE : 0,
    );
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `Invalid regex ${JSON.stringify(pattern.slice(0, 200))}: ${reason}. Use literal=true to search for the text as is.`,
    );
  }
}

/** Give the thread's event loop a turn every few milliseconds, so an abort gets through. */
const SLICE_MS = 8;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function looksBinary(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, 8000);
  for (let i = 0; i < n; i++) if (bytes[i] === 0) return true;
  return false;
}

function cutLine(line: string): { text: string; cut: boolean } {
  if (line.length <= MAX_LINE_CHARS) return { text: line, cut: false };
  return { text: `${line.slice(0, MAX_LINE_CHARS)}... [truncated]`, cut: true };
}

/**
 * Search files under `root` (a file or a directory) for up to `limit` matching lines and
 * format them with their context. Overlapping context is printed once, and output stops
 * at `maxOutputBytes`, so neither a huge `context` nor a huge `limit` can make it grow
 * beyond what the tool will show anyway.
 */
export async function grepFiles(
  fs: IFileSystem,
  root: string,
  isDirectory: boolean,
  query: GrepQuery,
): Promise<GrepResult> {
  const re = compilePattern(query.pattern, query.ignoreCase, query.literal);
  const glob = query.glob;
  const globMatches = glob
    ? glob.includes("/")
      ? compileGlob(glob)
      : (
          (name) => (rel: string) =>
            name(posix.basename(rel))
        )(compileGlob(glob))
    : () => true;
  const stats: WalkStats = { entries: 0 };
  const candidates: AsyncIterable<{ path: string; rel: string; isFile: boolean; size: number }> =
    isDirectory
      ? walk(fs, root, { signal: query.signal, limits: query.walk, stats })
      : (async function* () {
          const st = await fs.stat(root);
          yield { path: root, rel: posix.basename(root), isFile: st.isFile, size: st.size };
        })();
  const result: GrepResult = {
    lines: [],
    matches: 0,
    limitReached: false,
    bytesCapped: false,
    linesTruncated: false,
    walk: stats,
  };
  let bytes = 0;
  let sliceStart = performance.now();
  const pause = async () => {
    if (performance.now() - sliceStart <= SLICE_MS) return;
    await nextTurn();
    if (query.signal?.aborted) throw abortError();
    sliceStart = performance.now();
  };
  /** Add one output line; false once the byte budget is spent. */
  const emit = (line: string): boolean => {
    result.lines.push(line);
    bytes += Buffer.byteLength(line) + 1;
    if (bytes <= query.maxOutputBytes) return true;
    result.bytesCapped = true;
    return false;
  };
  for await (const file of candidates) {
    if (query.signal?.aborted) throw abortError();
    if (!file.isFile || file.size > query.maxFileBytes || !globMatches(file.rel)) continue;
    let bytesOfFile: Uint8Array;
    try {
      bytesOfFile = await fs.readFileBuffer(file.path);
    } catch {
      continue;
    }
    if (looksBinary(bytesOfFile)) continue;
    const lines = Buffer.from(bytesOfFile).toString("utf8").replace(/\r\n?/g, "\n").split("\n");
    if (lines.at(-1) === "") lines.pop();
    const rel = isDirectory ? posix.relative(root, file.path) : posix.basename(file.path);
    /** Last line number already printed for this file (context is printed once). */
    let printed = 0;
    for (let i = 0; i < lines.length; i++) {
      if ((i & 255) === 0) await pause();
      // One long line costs time linear in its length; check the clock after it.
      if (lines[i]!.length > 65_536) await pause();
      if (!re.test(lines[i]!)) continue;
      result.matches++;
      const matchNo = i + 1;
      const first = Math.max(printed + 1, matchNo - query.context);
      const last = Math.min(lines.length, matchNo + query.context);
      for (let n = first; n <= last; n++) {
        // A later match inside this window is printed as a match when its turn comes.
        if (n > matchNo && re.test(lines[n - 1]!)) break;
        const { text, cut } = cutLine(lines[n - 1] ?? "");
        result.linesTruncated ||= cut;
        printed = n;
        if (!emit(n === matchNo ? `${rel}:${n}: ${text}` : `${rel}-${n}- ${text}`)) return result;
      }
      if (result.matches >= query.limit) {
        result.limitReached = true;
        return result;
      }
    }
  }
  return result;
}
