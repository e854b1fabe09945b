import { posix } from "node:path";
import type { IFileSystem } from "just-bash";
import { minimatch } from "minimatch";
import { RE2JS } from "re2js";

/** Directories pi's own find/grep skip; kept for the same results on the virtual tier. */
export const DEFAULT_IGNORES = ["**/node_modules/**", "**/.git/**"];

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
  options: { ignore?: readonly string[]; signal?: AbortSignal } = {},
): AsyncGenerator<WalkEntry> {
  const ignore = options.ignore ?? DEFAULT_IGNORES;
  const ignored = (rel: string) => ignore.some((g) => minimatch(`${rel}/_`, g, { dot: true }));
  const stack: string[] = [root];
  while (stack.length > 0) {
    if (options.signal?.aborted) throw abortError();
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = (await fs.readdir(dir)).sort();
    } catch {
      continue;
    }
    const subdirs: string[] = [];
    for (const name of names) {
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
      if (st.isDirectory) subdirs.push(path);
    }
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
}

/**
 * fd-style glob: a pattern without "/" matches the file name anywhere below the root; one
 * with "/" matches the path relative to the root (or, when it starts with "/", the
 * absolute path). Returns absolute paths, directories with a trailing "/".
 */
export async function globFiles(
  fs: IFileSystem,
  root: string,
  pattern: string,
  options: { ignore?: readonly string[]; limit: number; signal?: AbortSignal },
): Promise<string[]> {
  const opts = { dot: true };
  const matches = pattern.includes("/")
    ? pattern.startsWith("/")
      ? (e: WalkEntry) => minimatch(e.path, pattern, opts)
      : (e: WalkEntry) =>
          minimatch(e.rel, pattern, opts) ||
          (!pattern.startsWith("**/") && minimatch(e.rel, `**/${pattern}`, opts))
    : (e: WalkEntry) => minimatch(posix.basename(e.rel), pattern, opts);
  const out: string[] = [];
  for await (const entry of walk(fs, root, options)) {
    if (!matches(entry)) continue;
    out.push(entry.isDirectory ? `${entry.path}/` : entry.path);
    if (out.length >= options.limit) break;
  }
  return out;
}

export interface GrepQuery {
  pattern: string;
  ignoreCase?: boolean;
  literal?: boolean;
  /** rg-style --glob: without "/" it matches file names, with "/" paths below the root. */
  glob?: string;
  limit: number;
  /** Files larger than this are skipped (like binaries). */
  maxFileBytes: number;
  signal?: AbortSignal;
}

export interface GrepMatch {
  path: string;
  lineNumber: number;
  /** All lines of the file, for context. */
  lines: string[];
}

/**
 * Compile with RE2 semantics (linear time, the same family as ripgrep's regex engine):
 * in a process shared by hundreds of sessions one catastrophic backtracking pattern
 * must not stall everyone.
 */
export function compilePattern(pattern: string, ignoreCase = false, literal = false): RE2JS {
  try {
    return RE2JS.compile(
      literal ? RE2JS.quote(pattern) : pattern,
      ignoreCase ? RE2JS.CASE_INSENSITIVE : 0,
    );
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `Invalid regex ${JSON.stringify(pattern)}: ${reason}. Use literal=true to search for the text as is.`,
    );
  }
}

/**
 * grep runs on the main thread next to every other session: give the event loop a turn
 * every few milliseconds of matching so one big search cannot stall the others.
 */
const SLICE_MS = 8;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function looksBinary(bytes: Uint8Array): boolean {
  const n = Math.min(bytes.length, 8000);
  for (let i = 0; i < n; i++) if (bytes[i] === 0) return true;
  return false;
}

/** Search files under `root` (a file or a directory) and return up to `limit` matches. */
export async function grepFiles(
  fs: IFileSystem,
  root: string,
  isDirectory: boolean,
  query: GrepQuery,
): Promise<{ matches: GrepMatch[]; limitReached: boolean }> {
  const re = compilePattern(query.pattern, query.ignoreCase, query.literal);
  const glob = query.glob;
  const globMatches = (rel: string) =>
    !glob ||
    (glob.includes("/")
      ? minimatch(rel, glob, { dot: true })
      : minimatch(posix.basename(rel), glob, { dot: true }));
  const candidates: AsyncIterable<{ path: string; rel: string; isFile: boolean; size: number }> =
    isDirectory
      ? walk(fs, root, { signal: query.signal })
      : (async function* () {
          const st = await fs.stat(root);
          yield { path: root, rel: posix.basename(root), isFile: st.isFile, size: st.size };
        })();
  const matches: GrepMatch[] = [];
  let sliceStart = performance.now();
  for await (const file of candidates) {
    if (query.signal?.aborted) throw abortError();
    if (!file.isFile || file.size > query.maxFileBytes || !globMatches(file.rel)) continue;
    let bytes: Uint8Array;
    try {
      bytes = await fs.readFileBuffer(file.path);
    } catch {
      continue;
    }
    if (looksBinary(bytes)) continue;
    const lines = Buffer.from(bytes).toString("utf8").replace(/\r\n?/g, "\n").split("\n");
    if (lines.at(-1) === "") lines.pop();
    for (let i = 0; i < lines.length; i++) {
      if ((i & 255) === 0 && performance.now() - sliceStart > SLICE_MS) {
        await nextTurn();
        if (query.signal?.aborted) throw abortError();
        sliceStart = performance.now();
      }
      if (!re.test(lines[i]!)) continue;
      matches.push({ path: file.path, lineNumber: i + 1, lines });
      if (matches.length >= query.limit) return { matches, limitReached: true };
    }
  }
  return { matches, limitReached: false };
}
