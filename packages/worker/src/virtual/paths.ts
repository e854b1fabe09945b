import { posix } from "node:path";

/** The agent's home and working directory inside the virtual filesystem. */
export const WORKSPACE_DIR = "/workspace";
/** The files of the sandbox's skills, read-only (one folder per skill). */
export const SKILLS_DIR = "/skills";
/** Scratch space; stored with the volume (see VOLUME_TMP_DIR) so it costs no memory. */
export const TMP_DIR = "/tmp";
/** Where /tmp lives inside the volume directory (so it is also visible as /workspace/.tmp). */
export const VOLUME_TMP_DIR = ".tmp";

/** Linux limits; longer paths are refused before they reach the host filesystem. */
export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;

/** An error carrying a POSIX code, the shape both just-bash and pi inspect. */
export class VirtualFsError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "VirtualFsError";
    this.code = code;
  }
}

/**
 * A path the agent may not use (outside the workspace, NUL bytes, too long). Deliberately
 * without a `code`: pi shows "Error code: X" instead of the message when there is one.
 */
export class VirtualPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VirtualPathError";
  }
}

/** Refuse NUL bytes and over-long paths or names (ENAMETOOLONG) with a clear message. */
export function assertPathShape(path: string): void {
  if (path.includes("\0")) {
    throw new VirtualPathError("Invalid path: paths may not contain NUL bytes.");
  }
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) {
    throw new VirtualPathError(
      `Path too long (${Buffer.byteLength(path)} bytes; the limit is ${MAX_PATH_BYTES}).`,
    );
  }
  for (const name of path.split("/")) {
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
      throw new VirtualPathError(
        `File name too long (${Buffer.byteLength(name)} bytes; the limit is ${MAX_NAME_BYTES}): ${name.slice(0, 40)}...`,
      );
    }
  }
}

/**
 * True for /workspace, /tmp and /skills and anything below them: the only places
 * tools may touch (/skills is mounted read-only, so writing there is refused).
 */
export function isInsideWritableArea(absPath: string): boolean {
  return [WORKSPACE_DIR, TMP_DIR, SKILLS_DIR].some(
    (dir) => absPath === dir || absPath.startsWith(`${dir}/`),
  );
}

/**
 * Resolve `input` against the virtual `cwd` and make sure it stays in /workspace or /tmp.
 * `~` means /workspace (the agent's HOME). Returns a normalized absolute virtual path.
 */
export function confinePath(input: string, cwd: string = WORKSPACE_DIR): string {
  assertPathShape(input);
  const expanded =
    input === "~" ? WORKSPACE_DIR : input.startsWith("~/") ? WORKSPACE_DIR + input.slice(1) : input;
  const resolved = posix.resolve(cwd, expanded);
  if (!isInsideWritableArea(resolved)) {
    throw new VirtualPathError(
      `Access denied: ${input} is outside the workspace. Only ${WORKSPACE_DIR} (your home), ${TMP_DIR} and ${SKILLS_DIR} (read-only skill files) are available; use paths under ${WORKSPACE_DIR}.`,
    );
  }
  return resolved;
}

/**
 * Lexically resolve a symlink `target` relative to `dir` (both inside one root, `dir`
 * absolute). Returns null when `..` climbs above the root instead of clamping like
 * path.resolve does, so an escape is detected rather than silently rewritten.
 */
export function resolveWithinRoot(dir: string, target: string): string | null {
  const parts = target.startsWith("/") ? [] : dir.split("/").filter(Boolean);
  for (const seg of target.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (parts.length === 0) return null;
      parts.pop();
    } else {
      parts.push(seg);
    }
  }
  return `/${parts.join("/")}`;
}

/** Map a mount-relative path (what a mounted filesystem receives) back to the agent's view. */
export function toVirtual(mountPoint: string, relPath: string): string {
  return relPath === "/" ? mountPoint : `${mountPoint}${relPath}`;
}

const FRIENDLY: Record<string, string> = {
  ENOENT: "No such file or directory",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  EEXIST: "File exists",
  ENOTEMPTY: "Directory not empty",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EFBIG: "File too large",
  ELOOP: "Too many levels of symbolic links",
};

/**
 * Turn an error from the filesystem stack into one that names the agent's path and never
 * the host path. just-bash errors look like "ENOENT: no such file ..., open '/a.txt'".
 */
export function describeFsError(error: unknown, virtualPath: string): Error {
  if (error instanceof VirtualFsError || error instanceof VirtualPathError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code =
    (error as { code?: unknown } | null)?.code?.toString() ??
    /^([A-Z][A-Z0-9]+):/.exec(message)?.[1];
  if (code && FRIENDLY[code]) {
    const hint = /outside sandbox|escaping sandbox/.test(message)
      ? " (it resolves outside the workspace)"
      : "";
    return new VirtualFsError(code, `${FRIENDLY[code]}: ${virtualPath}${hint}`);
  }
  return new VirtualFsError(code ?? "EIO", `I/O error on ${virtualPath}`);
}
