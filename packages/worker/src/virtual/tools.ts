import { readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, posix } from "node:path";
import {
  type BashOperations,
  createBashToolDefinition,
  createEditToolDefinition,
  createLsToolDefinition,
  createReadToolDefinition,
  createWriteToolDefinition,
  type EditOperations,
  type ExtensionContext,
  type LsOperations,
  type ReadOperations,
  type ToolDefinition,
  type WriteOperations,
} from "@earendil-works/pi-coding-agent";
import { imageSize } from "image-size";
import type { IFileSystem } from "just-bash";
import {
  confinePath,
  describeFsError,
  TMP_DIR,
  VirtualFsError,
  VirtualPathError,
} from "./paths.ts";
import { type SearchBackend, virtualFind, virtualGrep } from "./search-tools.ts";
import type { ShellResult } from "./shell.ts";
import { type CountBounds, cappedNote, countParam, TOOL_BOUNDS } from "./tool-limits.ts";

/** The pi tool names the virtual tier provides, all backed by the session's virtual FS. */
export const VIRTUAL_TOOL_NAMES = ["read", "bash", "edit", "write", "grep", "find", "ls"] as const;
export type VirtualToolName = (typeof VIRTUAL_TOOL_NAMES)[number];

// biome-ignore lint/suspicious/noExplicitAny: pi's own tool lists are ToolDefinition<any, any>.
export type AnyToolDefinition = ToolDefinition<any, any>;

/** What the tools need from a workspace. */
export interface ToolBackend extends SearchBackend {
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
  /**
   * Run a tool call that works on the pool's main thread (read, write, edit, ls): one at a
   * time per session, under a deadline, recorded in the pool's call journal.
   */
  mainThreadCall<T>(
    tool: string,
    signal: AbortSignal | undefined,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T>;
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

/**
 * Largest image the read tool decodes (pi decodes and resizes it in a worker thread of the
 * pool, 4 bytes a pixel, with no memory limit of its own): a few-KB PNG can claim to be
 * 50 000 × 50 000 pixels, and decoding it would take the whole pool down.
 */
export const MAX_IMAGE_PIXELS = 40_000_000;

function assertImageSize(bytes: Uint8Array, path: string): void {
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = imageSize(bytes));
  } catch {
    throw new VirtualFsError("EINVAL", `${path} is not a readable image (its header is damaged)`);
  }
  if (!width || !height || width * height > MAX_IMAGE_PIXELS)
    throw new VirtualFsError(
      "EFBIG",
      `${path} is ${width ?? "?"}×${height ?? "?"} pixels; the read tool shows images of up to ${MAX_IMAGE_PIXELS / 1_000_000} megapixels. Use a smaller image.`,
    );
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
      const bytes = await readFile(p);
      const mime = sniffImage(bytes);
      if (mime) assertImageSize(bytes, p);
      return mime;
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
  return { read, write, edit, ls };
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

/** Count parameters checked (and lowered to their bound) before pi's own tools see them. */
const PARAM_BOUNDS: Partial<Record<string, Record<string, CountBounds>>> = {
  read: TOOL_BOUNDS.read,
  ls: TOOL_BOUNDS.ls,
};

/**
 * Run a pi tool with the virtual cwd: pi resolves paths against `ctx.cwd`, which is the
 * session's host directory. `~` is mapped to /workspace before pi expands it to the host's
 * home directory. Count parameters are bounded first, and with `backend` the call goes
 * through the workspace's main-thread guard (one at a time, deadline, call journal).
 */
function virtualize(
  definition: AnyToolDefinition,
  cwd: string,
  backend?: ToolBackend,
): AnyToolDefinition {
  return {
    ...definition,
    async execute(toolCallId, params, signal, onUpdate, ctx) {
      const args: Record<string, unknown> = { ...(params as object) };
      if (typeof args.path === "string" && (args.path === "~" || args.path.startsWith("~/"))) {
        args.path = confinePath(args.path, cwd);
      }
      const capped: Array<[string, number]> = [];
      for (const [name, bounds] of Object.entries(PARAM_BOUNDS[definition.name] ?? {})) {
        if (args[name] === undefined) continue;
        const checked = countParam(definition.name, name, args[name], bounds);
        args[name] = checked.value;
        if (checked.capped) capped.push([name, checked.value]);
      }
      const scoped: ExtensionContext | undefined = ctx
        ? Object.create(ctx, { cwd: { value: cwd, enumerable: true } })
        : undefined;
      const call = (callSignal: AbortSignal | undefined) =>
        definition.execute(toolCallId, args, callSignal, onUpdate, scoped as ExtensionContext);
      const result = backend
        ? await backend.mainThreadCall(definition.name, signal, call)
        : await call(signal);
      if (capped.length > 0)
        result.content.push({ type: "text", text: `\n${cappedNote(definition.name, capped)}` });
      return result;
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

/** The seven tool definitions, operating on the virtual FS with `cwd` as working directory. */
export function createVirtualTools(
  backend: ToolBackend,
  cwd: string,
  names: readonly VirtualToolName[] = VIRTUAL_TOOL_NAMES,
): AnyToolDefinition[] {
  const ops = fileOps(backend);
  const make: Record<VirtualToolName, () => AnyToolDefinition> = {
    read: () => virtualize(createReadToolDefinition(cwd, { operations: ops.read }), cwd, backend),
    bash: () => virtualBash(backend, cwd),
    edit: () => virtualize(createEditToolDefinition(cwd, { operations: ops.edit }), cwd, backend),
    write: () =>
      virtualize(createWriteToolDefinition(cwd, { operations: ops.write }), cwd, backend),
    grep: () => virtualGrep(backend, cwd),
    find: () => virtualize(virtualFind(backend, cwd), cwd),
    ls: () => virtualize(createLsToolDefinition(cwd, { operations: ops.ls }), cwd, backend),
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
