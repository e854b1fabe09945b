import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, posix } from "node:path";
import {
  type BashOperations,
  createBashToolDefinition,
  createEditToolDefinition,
  createFindToolDefinition,
  createLsToolDefinition,
  createReadToolDefinition,
  createWriteToolDefinition,
  DEFAULT_MAX_BYTES,
  type EditOperations,
  type ExtensionContext,
  type FindOperations,
  formatSize,
  type LsOperations,
  type ReadOperations,
  type ToolDefinition,
  truncateHead,
  truncateLine,
  type WriteOperations,
} from "@earendil-works/pi-coding-agent";
import type { IFileSystem } from "just-bash";
import { Type } from "typebox";
import {
  confinePath,
  describeFsError,
  TMP_DIR,
  VirtualFsError,
  VirtualPathError,
} from "./paths.ts";
import { globFiles, grepFiles } from "./search.ts";
import type { ShellResult } from "./shell.ts";

/** The pi tool names the virtual tier provides, all backed by the session's virtual FS. */
export const VIRTUAL_TOOL_NAMES = ["read", "bash", "edit", "write", "grep", "find", "ls"] as const;
export type VirtualToolName = (typeof VIRTUAL_TOOL_NAMES)[number];

// biome-ignore lint/suspicious/noExplicitAny: pi's own tool lists are ToolDefinition<any, any>.
export type AnyToolDefinition = ToolDefinition<any, any>;

/** What the tools need from a workspace. */
export interface ToolBackend {
  fs(): Promise<IFileSystem>;
  run(
    command: string,
    options: {
      cwd: string;
      env: Record<string, string>;
      signal?: AbortSignal;
      timeoutMs?: number;
    },
  ): Promise<ShellResult & { timeoutMs: number }>;
  maxFileBytes: number;
}

/** Run a filesystem call on a confined path, reporting errors with the agent's path. */
async function onPath<T>(
  backend: ToolBackend,
  input: string,
  fn: (fs: IFileSystem, path: string) => Promise<T>,
): Promise<T> {
  const path = confinePath(input);
  const fs = await backend.fs();
  try {
    return await fn(fs, path);
  } catch (error) {
    throw describeFsError(error, path);
  }
}

const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg", ".gif", ".webp"]);

function sniffImage(b: Uint8Array): string | null {
  const ascii = (at: number, s: string) =>
    Buffer.from(b.subarray(at, at + s.length)).toString("latin1") === s;
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  if (ascii(0, "\x89PNG\r\n\x1a\n")) return "image/png";
  if (ascii(0, "GIF87a") || ascii(0, "GIF89a")) return "image/gif";
  if (ascii(0, "RIFF") && ascii(8, "WEBP")) return "image/webp";
  return null;
}

async function assertFile(fs: IFileSystem, path: string): Promise<void> {
  const st = await fs.stat(path);
  if (st.isDirectory) throw new VirtualFsError("EISDIR", `Is a directory: ${path}`);
}

function fileOps(backend: ToolBackend) {
  const readFile = (p: string) =>
    onPath(backend, p, async (fs, path) => Buffer.from(await fs.readFileBuffer(path)));
  const writeFile = (p: string, content: string) =>
    onPath(backend, p, (fs, path) => fs.writeFile(path, content));
  const access = (p: string) => onPath(backend, p, assertFile);
  const exists = async (p: string) => {
    try {
      return await onPath(backend, p, (fs, path) => fs.exists(path));
    } catch (error) {
      // A path outside the workspace must say so, not "not found".
      if (error instanceof VirtualPathError) throw error;
      return false;
    }
  };

  const read: ReadOperations = {
    readFile,
    access,
    detectImageMimeType: async (p) => {
      if (!IMAGE_EXTENSIONS.has(posix.extname(p).toLowerCase())) return null;
      return sniffImage(await readFile(p));
    },
  };
  const write: WriteOperations = {
    writeFile,
    mkdir: (dir) => onPath(backend, dir, (fs, path) => fs.mkdir(path, { recursive: true })),
  };
  const edit: EditOperations = { readFile, writeFile, access };
  const ls: LsOperations = {
    exists,
    stat: (p) =>
      onPath(backend, p, async (fs, path) => {
        const st = await fs.stat(path);
        return { isDirectory: () => st.isDirectory };
      }),
    readdir: (p) => onPath(backend, p, (fs, path) => fs.readdir(path)),
  };
  const find: FindOperations = {
    exists,
    glob: (pattern, cwd, { ignore, limit }) =>
      onPath(backend, cwd, (fs, path) => globFiles(fs, path, pattern, { ignore, limit })),
  };
  return { read, write, edit, ls, find };
}

/** Session variables pi exposes to the shell; the rest of `env` is the host's and stays out. */
const PI_VARS = ["PI_SESSION_ID", "PI_PROVIDER", "PI_MODEL", "PI_REASONING_LEVEL"];

function bashOps(backend: ToolBackend): BashOperations {
  return {
    exec: async (command, cwd, { onData, signal, timeout, env }) => {
      if (signal?.aborted) throw new Error("aborted");
      const piEnv: Record<string, string> = {};
      for (const key of PI_VARS) {
        const value = env?.[key];
        if (value !== undefined) piEnv[key] = value;
      }
      const userMs =
        timeout && Number.isFinite(timeout) && timeout > 0 ? timeout * 1000 : undefined;
      const result = await backend.run(command, {
        cwd: confinePath(cwd),
        env: piEnv,
        signal,
        timeoutMs: userMs,
      });
      if (result.stdout.length > 0) onData(result.stdout);
      if (result.stderr.length > 0) onData(result.stderr);
      // pi's bash tool turns these two messages into "Command aborted" / "timed out after N s".
      if (result.aborted) throw new Error("aborted");
      if (result.timedOut) throw new Error(`timeout:${result.timeoutMs / 1000}`);
      return { exitCode: result.exitCode };
    },
  };
}

const FULL_OUTPUT = new RegExp(
  `${join(tmpdir(), "pi-bash-").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}[A-Za-z0-9_-]+\\.log`,
  "g",
);

/**
 * pi saves truncated bash output to a file in the host's temp directory and tells the model
 * its path, which the agent could not open from the virtual FS (and which would pile up on
 * the host). Move it into the session's /tmp, under quota, and rewrite the path.
 */
async function relocateFullOutput(backend: ToolBackend, text: string): Promise<string> {
  const hostPaths = [...new Set(text.match(FULL_OUTPUT) ?? [])];
  for (const hostPath of hostPaths) {
    const virtualPath = posix.join(TMP_DIR, basename(hostPath));
    let replacement = virtualPath;
    try {
      const content = await readFile(hostPath);
      const fs = await backend.fs();
      await fs.writeFile(virtualPath, content);
    } catch (error) {
      const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
      replacement = `(not kept: ${reason})`;
    } finally {
      await rm(hostPath, { force: true });
    }
    text = text.split(hostPath).join(replacement);
  }
  return text;
}

/**
 * Run a pi tool with the virtual cwd: pi resolves paths against `ctx.cwd`, which is the
 * session's host directory. `~` is mapped to /workspace before pi expands it to the host's
 * home directory.
 */
function virtualize(definition: AnyToolDefinition, cwd: string): AnyToolDefinition {
  return {
    ...definition,
    execute(toolCallId, params, signal, onUpdate, ctx) {
      const args: Record<string, unknown> = { ...(params as object) };
      if (typeof args.path === "string" && (args.path === "~" || args.path.startsWith("~/"))) {
        args.path = confinePath(args.path, cwd);
      }
      const scoped: ExtensionContext | undefined = ctx
        ? Object.create(ctx, { cwd: { value: cwd, enumerable: true } })
        : undefined;
      return definition.execute(toolCallId, args, signal, onUpdate, scoped as ExtensionContext);
    },
  };
}

function virtualBash(backend: ToolBackend, cwd: string): AnyToolDefinition {
  const inner = virtualize(createBashToolDefinition(cwd, { operations: bashOps(backend) }), cwd);
  return {
    ...inner,
    async execute(...args) {
      try {
        const result = await inner.execute(...args);
        for (const part of result.content) {
          if (part.type === "text") part.text = await relocateFullOutput(backend, part.text);
        }
        if (result.details?.fullOutputPath) {
          result.details.fullOutputPath = posix.join(
            TMP_DIR,
            basename(result.details.fullOutputPath),
          );
        }
        return result;
      } catch (error) {
        if (error instanceof Error)
          error.message = await relocateFullOutput(backend, error.message);
        throw error;
      }
    },
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
      description: "Number of lines to show before and after each match (default: 0)",
    }),
  ),
  limit: Type.Optional(
    Type.Number({ description: "Maximum number of matches to return (default: 100)" }),
  ),
});

const GREP_DEFAULT_LIMIT = 100;

/**
 * pi's grep always runs ripgrep on the host path, whatever operations it is given, so the
 * virtual tier brings its own: same name, parameters and output format, searching the
 * virtual FS with a linear-time (RE2) regex engine.
 */
function virtualGrep(backend: ToolBackend, cwd: string): AnyToolDefinition {
  const definition: ToolDefinition<typeof grepSchema> = {
    name: "grep",
    label: "grep",
    description: `Search file contents for a pattern (RE2/ripgrep regex syntax). Returns matching lines with file paths and line numbers. Skips node_modules, .git and binary files. Output is truncated to ${GREP_DEFAULT_LIMIT} matches or ${DEFAULT_MAX_BYTES / 1024}KB (whichever is hit first). Long lines are truncated to 500 chars.`,
    promptSnippet: "Search file contents for patterns",
    parameters: grepSchema,
    async execute(_id, params, signal) {
      const { pattern, glob, ignoreCase, literal } = params;
      const searchPath = confinePath(params.path || ".", cwd);
      const fs = await backend.fs();
      let isDirectory: boolean;
      try {
        isDirectory = (await fs.stat(searchPath)).isDirectory;
      } catch {
        throw new Error(`Path not found: ${searchPath}`);
      }
      const limit = Math.max(1, params.limit ?? GREP_DEFAULT_LIMIT);
      const context = params.context && params.context > 0 ? Math.floor(params.context) : 0;
      const { matches, limitReached } = await grepFiles(fs, searchPath, isDirectory, {
        pattern,
        glob,
        ignoreCase,
        literal,
        limit,
        maxFileBytes: backend.maxFileBytes,
        signal,
      });
      if (matches.length === 0) {
        return { content: [{ type: "text", text: "No matches found" }], details: undefined };
      }
      let linesTruncated = false;
      const out: string[] = [];
      for (const m of matches) {
        const rel = isDirectory ? posix.relative(searchPath, m.path) : posix.basename(m.path);
        const first = Math.max(1, m.lineNumber - context);
        const last = Math.min(m.lines.length, m.lineNumber + context);
        for (let n = first; n <= last; n++) {
          const { text, wasTruncated } = truncateLine(m.lines[n - 1] ?? "");
          linesTruncated ||= wasTruncated;
          out.push(n === m.lineNumber ? `${rel}:${n}: ${text}` : `${rel}-${n}- ${text}`);
        }
      }
      const truncation = truncateHead(out.join("\n"), { maxLines: Number.MAX_SAFE_INTEGER });
      const notices: string[] = [];
      const details: Record<string, unknown> = {};
      if (limitReached) {
        notices.push(
          `${limit} matches limit reached. Use limit=${limit * 2} for more, or refine pattern`,
        );
        details.matchLimitReached = limit;
      }
      if (truncation.truncated) {
        notices.push(`${formatSize(DEFAULT_MAX_BYTES)} limit reached`);
        details.truncation = truncation;
      }
      if (linesTruncated) {
        notices.push("Some lines truncated to 500 chars. Use read tool to see full lines");
        details.linesTruncated = true;
      }
      const text = truncation.content + (notices.length > 0 ? `\n\n[${notices.join(". ")}]` : "");
      return {
        content: [{ type: "text", text }],
        details: Object.keys(details).length > 0 ? details : undefined,
      };
    },
  };
  return definition as AnyToolDefinition;
}

/** The seven tool definitions, operating on the virtual FS with `cwd` as working directory. */
export function createVirtualTools(
  backend: ToolBackend,
  cwd: string,
  names: readonly VirtualToolName[] = VIRTUAL_TOOL_NAMES,
): AnyToolDefinition[] {
  const ops = fileOps(backend);
  const make: Record<VirtualToolName, () => AnyToolDefinition> = {
    read: () => virtualize(createReadToolDefinition(cwd, { operations: ops.read }), cwd),
    bash: () => virtualBash(backend, cwd),
    edit: () => virtualize(createEditToolDefinition(cwd, { operations: ops.edit }), cwd),
    write: () => virtualize(createWriteToolDefinition(cwd, { operations: ops.write }), cwd),
    grep: () => virtualGrep(backend, cwd),
    find: () => virtualize(createFindToolDefinition(cwd, { operations: ops.find }), cwd),
    ls: () => virtualize(createLsToolDefinition(cwd, { operations: ops.ls }), cwd),
  };
  return names.map((name) => {
    const factory = make[name];
    if (!factory) {
      throw new Error(
        `Unknown virtual tool "${name}"; available: ${VIRTUAL_TOOL_NAMES.join(", ")}.`,
      );
    }
    return factory();
  });
}
