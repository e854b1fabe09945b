import { posix } from "node:path";
import {
  DEFAULT_MAX_BYTES,
  formatSize,
  type ToolDefinition,
  truncateHead,
} from "@earendil-works/pi-coding-agent";
import { Type } from "typebox";
import { confinePath } from "./paths.ts";
import { DEFAULT_IGNORES, type WalkStats } from "./search.ts";
import type { SearchJob, SearchOutcome } from "./shell-protocol.ts";
import { cappedNote, countParam, TOOL_BOUNDS, WALK_LIMITS } from "./tool-limits.ts";

// biome-ignore lint/suspicious/noExplicitAny: pi's own tool lists are ToolDefinition<any, any>.
type AnyToolDefinition = ToolDefinition<any, any>;

/** A search as the tools describe it; the workspace adds the volume and the deadline. */
export type SearchRequest = SearchJob extends infer J
  ? J extends SearchJob
    ? Omit<J, "volumeDir" | "tmpDir" | "quota" | "timeoutMs">
    : never
  : never;

/** What the search tools need from a workspace. */
export interface SearchBackend {
  fs(): Promise<{ stat(path: string): Promise<{ isDirectory: boolean }> }>;
  /** Run the search on a shell thread, under the workspace's search deadline. */
  search(request: SearchRequest, signal?: AbortSignal): Promise<SearchOutcome>;
  maxFileBytes: number;
}

async function statOrNotFound(backend: SearchBackend, path: string) {
  const fs = await backend.fs();
  try {
    return await fs.stat(path);
  } catch {
    throw new Error(`Path not found: ${path}`);
  }
}

function walkNote(walk: WalkStats): string | undefined {
  if (walk.capped === "entries")
    return `stopped after looking at ${WALK_LIMITS.maxEntries} entries; search a smaller directory`;
  if (walk.capped === "depth")
    return `directories deeper than ${WALK_LIMITS.maxDepth} levels were not searched`;
  return undefined;
}

function finish(
  lines: string,
  notices: string[],
  details: Record<string, unknown>,
  capped: Array<[string, number]>,
  tool: string,
) {
  const truncation = truncateHead(lines, { maxLines: Number.MAX_SAFE_INTEGER });
  const bytesNotice = `${formatSize(DEFAULT_MAX_BYTES)} limit reached`;
  if (truncation.truncated && !notices.includes(bytesNotice)) {
    notices.push(bytesNotice);
    details.truncation = truncation;
  }
  let text = truncation.content;
  if (notices.length > 0) text += `\n\n[${notices.join(". ")}]`;
  if (capped.length > 0) text += `\n${cappedNote(tool, capped)}`;
  return {
    content: [{ type: "text" as const, text }],
    details: Object.keys(details).length > 0 ? details : undefined,
  };
}

const grepSchema = Type.Object({
  pattern: Type.String({ description: "Search pattern (regex or literal string)" }),
  path: Type.Optional(
    Type.String({ description: "Directory or file to search (default: current directory)" }),
  ),
  glob: Type.Optional(
    Type.String({ description: "Filter files by glob pattern, e.g. '*.ts' or '**/*.spec.ts'" }),
  ),
  ignoreCase: Type.Optional(
    Type.Boolean({ description: "Case-insensitive search (default: false)" }),
  ),
  literal: Type.Optional(
    Type.Boolean({
      description: "Treat pattern as literal string instead of regex (default: false)",
    }),
  ),
  context: Type.Optional(
    Type.Number({
      description: `Number of lines to show before and after each match (default: 0, at most ${TOOL_BOUNDS.grep.context.max})`,
    }),
  ),
  limit: Type.Optional(
    Type.Number({
      description: `Maximum number of matches to return (default: ${TOOL_BOUNDS.grep.limit.fallback}, at most ${TOOL_BOUNDS.grep.limit.max})`,
    }),
  ),
});

/**
 * pi's grep always runs ripgrep on the host path, whatever operations it is given, so the
 * virtual tier brings its own: same name, parameters and output format, searching the
 * virtual FS with a linear-time (RE2) regex engine on a shell thread.
 */
export function virtualGrep(backend: SearchBackend, cwd: string): AnyToolDefinition {
  const definition: ToolDefinition<typeof grepSchema> = {
    name: "grep",
    label: "grep",
    description: `Search file contents for a pattern (RE2/ripgrep regex syntax). Returns matching lines with file paths and line numbers. Skips node_modules, .git and binary files. Output is truncated to ${TOOL_BOUNDS.grep.limit.fallback} matches or ${DEFAULT_MAX_BYTES / 1024}KB (whichever is hit first). Long lines are truncated to 500 chars.`,
    promptSnippet: "Search file contents for patterns",
    parameters: grepSchema,
    async execute(_id, params, signal) {
      const limit = countParam("grep", "limit", params.limit, TOOL_BOUNDS.grep.limit);
      const context = countParam("grep", "context", params.context, TOOL_BOUNDS.grep.context);
      const searchPath = confinePath(params.path || ".", cwd);
      const { isDirectory } = await statOrNotFound(backend, searchPath);
      const result = await backend.search(
        {
          kind: "grep",
          root: searchPath,
          isDirectory,
          pattern: params.pattern,
          ignoreCase: params.ignoreCase ?? false,
          literal: params.literal ?? false,
          glob: params.glob,
          limit: limit.value,
          context: context.value,
          maxFileBytes: backend.maxFileBytes,
          maxOutputBytes: DEFAULT_MAX_BYTES,
          walk: WALK_LIMITS,
        },
        signal,
      );
      if (result.kind !== "grep") throw new Error("grep: unexpected search result");
      const capped: Array<[string, number]> = [];
      if (limit.capped) capped.push(["limit", limit.value]);
      if (context.capped) capped.push(["context", context.value]);
      const notices: string[] = [];
      const details: Record<string, unknown> = {};
      const walked = walkNote(result.walk);
      if (result.matches === 0) {
        const text = `No matches found${walked ? `\n\n[${walked}]` : ""}`;
        return finish(text, [], {}, capped, "grep");
      }
      if (result.limitReached) {
        const more = Math.min(limit.value * 2, TOOL_BOUNDS.grep.limit.max);
        notices.push(
          more > limit.value
            ? `${limit.value} matches limit reached. Use limit=${more} for more, or refine pattern`
            : `${limit.value} matches limit reached. Refine the pattern or search a smaller path for more`,
        );
        details.matchLimitReached = limit.value;
      }
      if (result.bytesCapped) {
        notices.push(`${formatSize(DEFAULT_MAX_BYTES)} limit reached`);
        details.outputLimitReached = true;
      }
      if (result.linesTruncated) {
        notices.push("Some lines truncated to 500 chars. Use read tool to see full lines");
        details.linesTruncated = true;
      }
      if (walked) notices.push(walked);
      return finish(result.lines.join("\n"), notices, details, capped, "grep");
    },
  };
  return definition as AnyToolDefinition;
}

const findSchema = Type.Object({
  pattern: Type.String({
    description: "Glob pattern to match files, e.g. '*.ts', '**/*.json', or 'src/**/*.spec.ts'",
  }),
  path: Type.Optional(
    Type.String({ description: "Directory to search in (default: current directory)" }),
  ),
  limit: Type.Optional(
    Type.Number({
      description: `Maximum number of results (default: ${TOOL_BOUNDS.find.limit.fallback}, at most ${TOOL_BOUNDS.find.limit.max})`,
    }),
  ),
});

/**
 * find over the virtual FS, on a shell thread: same name, parameters and output as pi's
 * (paths relative to the search directory, directories with a trailing "/"), with globs
 * matched in linear time.
 */
export function virtualFind(backend: SearchBackend, cwd: string): AnyToolDefinition {
  const definition: ToolDefinition<typeof findSchema> = {
    name: "find",
    label: "find",
    description: `Search for files by glob pattern. Returns matching file paths relative to the search directory. Output is truncated to ${TOOL_BOUNDS.find.limit.fallback} results or ${DEFAULT_MAX_BYTES / 1024}KB (whichever is hit first).`,
    promptSnippet: "Find files by glob pattern",
    parameters: findSchema,
    async execute(_id, params, signal) {
      const limit = countParam("find", "limit", params.limit, TOOL_BOUNDS.find.limit);
      const searchPath = confinePath(params.path || ".", cwd);
      await statOrNotFound(backend, searchPath);
      const result = await backend.search(
        {
          kind: "glob",
          root: searchPath,
          pattern: params.pattern,
          ignore: [...DEFAULT_IGNORES],
          limit: limit.value,
          maxOutputBytes: DEFAULT_MAX_BYTES,
          walk: WALK_LIMITS,
        },
        signal,
      );
      if (result.kind !== "glob") throw new Error("find: unexpected search result");
      const capped: Array<[string, number]> = limit.capped ? [["limit", limit.value]] : [];
      const walked = walkNote(result.walk);
      if (result.paths.length === 0) {
        const text = `No files found matching pattern${walked ? `\n\n[${walked}]` : ""}`;
        return finish(text, [], {}, capped, "find");
      }
      const relative = result.paths.map((p) => {
        const dir = p.endsWith("/");
        const rel = posix.relative(searchPath, dir ? p.slice(0, -1) : p) || ".";
        return dir ? `${rel}/` : rel;
      });
      const notices: string[] = [];
      const details: Record<string, unknown> = {};
      if (result.limitReached) {
        notices.push(`${limit.value} results limit reached`);
        details.resultLimitReached = limit.value;
      }
      if (result.bytesCapped) {
        notices.push(`${formatSize(DEFAULT_MAX_BYTES)} limit reached`);
        details.outputLimitReached = true;
      }
      if (walked) notices.push(walked);
      return finish(relative.join("\n"), notices, details, capped, "find");
    },
  };
  return definition as AnyToolDefinition;
}
