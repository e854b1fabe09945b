import { createHash, randomBytes } from "node:crypto";
import { constants, type Dirent } from "node:fs";
import {
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  unlink,
} from "node:fs/promises";
import { dirname, extname, join, posix } from "node:path";
import { LobuError } from "@lobu/core";
import { bestEffort, type FailureLog, ignoreGone } from "@lobu/core/best-effort";
import { FileTooLarge } from "../domain/files.ts";
import { SANDBOX_WORKSPACE } from "./bwrap.ts";
import { readVolumeMeta } from "./identity.ts";

/**
 * The gateway's own reads and writes inside a sandbox volume (attachments into
 * `~/inbox`, files the agent sends out), the same for every driver: the
 * volume is the host folder every tier shows the agent as its home
 * (/workspace). The agent owns everything in it and may plant links anywhere,
 * so nothing here follows one: each folder is opened with O_NOFOLLOW and the
 * next step goes through the opened folder (`/proc/self/fd/<fd>/<name>`, an
 * openat() without a path walk that could be swapped meanwhile).
 */

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** Links followed when a sandbox path is resolved (Linux's own bound). */
const MAX_LINKS = 40;
/** Longest name written (bytes), leaving room for a collision suffix. */
const MAX_NAME_BYTES = 200;

/** A refused sandbox path: outside the workspace, a link out, not a regular file. */
export function pathRefused(message: string, hint?: string): LobuError {
  return new LobuError("file_path_refused", message, { status: 400, ...(hint ? { hint } : {}) });
}

/**
 * A name safe to create in a folder: no folders, NUL or control characters,
 * no leading dots (nothing hidden, never `.` or `..`), at most 200 bytes
 * (the extension kept), never empty.
 */
export function safeFileName(name: string): string {
  const base = name.split(/[/\\]/).pop() ?? "";
  let clean = base
    .replace(/[\p{Cc}\p{Cf}]/gu, "")
    .replace(/[:*?"<>|]/g, "_")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/^[.\s]+/, "")
    .replace(/[.\s]+$/, "");
  if (Buffer.byteLength(clean) > MAX_NAME_BYTES) {
    const ext = [...extname(clean)].slice(0, 16).join("");
    // By code points: a cut between the halves of an emoji would leave half of one.
    const stem = [...clean.slice(0, clean.length - extname(clean).length)];
    while (stem.length > 0 && Buffer.byteLength(stem.join("") + ext) > MAX_NAME_BYTES) stem.pop();
    clean = stem.join("") + ext;
  }
  return clean || "file";
}

/** `report.csv`, `report (1).csv`, `report (2).csv`, ... */
function candidates(name: string, max = 100): string[] {
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  return [name, ...Array.from({ length: max }, (_, i) => `${stem} (${i + 1})${ext}`)];
}

const at = (dir: FileHandle, name: string) => `/proc/self/fd/${dir.fd}/${name}`;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** Open the folder `name` inside `parent`, never through a link; made (and owned by the sandbox) when asked. */
async function openDir(
  parent: FileHandle,
  name: string,
  opts: { create: boolean; owner?: { uid: number; gid: number } | undefined; shown: string },
): Promise<FileHandle> {
  if (opts.create) {
    try {
      await mkdir(at(parent, name), { mode: 0o755 });
      if (opts.owner) {
        const made = await open(at(parent, name), DIR_FLAGS);
        await made.chown(opts.owner.uid, opts.owner.gid).finally(() => made.close());
      }
    } catch (err) {
      if (errno(err) !== "EEXIST") throw err;
    }
  }
  try {
    return await open(at(parent, name), DIR_FLAGS);
  } catch (err) {
    const code = errno(err);
    if (code === "ELOOP" || code === "ENOTDIR")
      throw pathRefused(
        `${opts.shown} is not a folder (it is a link or a file)`,
        "Files are written into real folders only; move it out of the way.",
      );
    if (code === "ENOENT") throw pathRefused(`${opts.shown} does not exist`);
    throw err;
  }
}

/** Open the volume's root and walk `dirs` below it (each opened without following links). */
async function walk(
  volumeDir: string,
  dirs: string[],
  opts: { create: boolean; owner?: { uid: number; gid: number } | undefined },
): Promise<FileHandle[]> {
  const handles = [await open(await realpath(volumeDir), DIR_FLAGS)];
  try {
    for (let i = 0; i < dirs.length; i++) {
      const shown = `~/${dirs.slice(0, i + 1).join("/")}`;
      handles.push(await openDir(handles.at(-1)!, dirs[i]!, { ...opts, shown }));
    }
    return handles;
  } catch (err) {
    await closeAll(handles);
    throw err;
  }
}

async function closeAll(handles: FileHandle[]): Promise<void> {
  for (const h of handles.reverse()) {
    try {
      await h.close();
    } catch {
      // close(2) releases the descriptor even when it reports an error: nothing stays open.
    }
  }
}

/**
 * The uid/gid the agent's files belong to when the gateway runs as root (what
 * it writes must be the agent's to change): the volume's own (process
 * sandboxes), else the volumes folder's (a virtual pool's uid, shared by its
 * sandboxes). Without root everything runs as the gateway's user.
 */
async function ownerOf(volumeDir: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const meta = (await readVolumeMeta(volumeDir)) ?? (await readVolumeMeta(dirname(volumeDir)));
  return meta ? { uid: meta.uid, gid: meta.gid } : undefined;
}

export interface WrittenFile {
  /** Path inside the workspace, `/`-separated (`inbox/2026-12-06/report.csv`). */
  rel: string;
  name: string;
  size: number;
}

/**
 * Write `body` to `<volume>/<dirs>/<name>` atomically: into a temporary file
 * first, then linked into place under the first free name (`name (1).ext`
 * when taken; nothing is ever overwritten), so a reader sees all of it or
 * nothing. A failure (over `maxBytes`, a broken download) removes the
 * temporary file. Folders are made as needed; a link or a file where a
 * folder should be is refused, never followed.
 */
export async function writeIntoVolume(opts: {
  volumeDir: string;
  dirs: string[];
  name: string;
  body: AsyncIterable<Uint8Array>;
  maxBytes: number;
  /** Where a temporary file left behind is reported (the gateway's logger). */
  log?: FailureLog;
}): Promise<WrittenFile> {
  const owner = await ownerOf(opts.volumeDir);
  const handles = await walk(opts.volumeDir, opts.dirs, { create: true, owner });
  const dir = handles.at(-1)!;
  const name = safeFileName(opts.name);
  const tmp = `.lobu-${randomBytes(8).toString("hex")}.part`;
  let file: FileHandle | undefined;
  try {
    file = await open(
      at(dir, tmp),
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644,
    );
    if (owner) await file.chown(owner.uid, owner.gid);
    let size = 0;
    const hash = createHash("sha256");
    for await (const chunk of opts.body) {
      size += chunk.byteLength;
      if (size > opts.maxBytes) throw new FileTooLarge(opts.maxBytes);
      hash.update(chunk);
      await file.write(chunk);
    }
    await file.sync();
    await file.close();
    file = undefined;
    const digest = hash.digest("hex");
    for (const candidate of candidates(name)) {
      const written = { rel: [...opts.dirs, candidate].join("/"), name: candidate, size };
      try {
        await link(at(dir, tmp), at(dir, candidate));
        return written;
      } catch (err) {
        if (errno(err) !== "EEXIST") throw err;
      }
      // The same file again (a retried turn, a file sent twice) is not kept twice.
      if (await sameContent(at(dir, candidate), size, digest)) return written;
    }
    throw pathRefused(`too many files named ${name} in ~/${opts.dirs.join("/")}`);
  } finally {
    if (file) await closeAll([file]);
    await unlink(at(dir, tmp))
      .catch(ignoreGone)
      .catch(
        bestEffort(opts.log ?? console, "temporary file left in the workspace", {
          path: [...opts.dirs, tmp].join("/"),
        }),
      );
    await closeAll(handles);
  }
}

/** Whether `path` (never followed if a link) is a regular file of `size` bytes hashing to `digest`. */
async function sameContent(path: string, size: number, digest: string): Promise<boolean> {
  let file: FileHandle;
  try {
    file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const st = await file.stat();
    if (!st.isFile() || st.size !== size) return false;
    const hash = createHash("sha256");
    for await (const chunk of file.createReadStream({ autoClose: false })) hash.update(chunk);
    return hash.digest("hex") === digest;
  } finally {
    await file.close();
  }
}

/**
 * The workspace-relative folders and name of `path` as the agent gave it:
 * relative to its working directory (the workspace), `~/...`, or absolute
 * under /workspace. Links are resolved the way the sandbox sees them (an
 * absolute target is a sandbox path), each checked to stay in the workspace.
 */
export async function resolveInVolume(volumeDir: string, path: string): Promise<string[]> {
  if (path.includes("\0")) throw pathRefused("the path contains a NUL byte");
  const root = await realpath(volumeDir);
  let pending = toParts(path);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (done.length === 0) throw outside(path);
      done.pop();
      continue;
    }
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(join(root, ...done, part));
    } catch (err) {
      if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR")
        throw pathRefused(`${path} does not exist in the workspace`);
      throw err;
    }
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) throw pathRefused(`${path}: too many links`);
    const target = await readlink(join(root, ...done, part));
    if (posix.isAbsolute(target)) {
      done.length = 0;
      pending = [...toParts(target, path), ...pending];
    } else pending = [...target.split("/"), ...pending];
  }
  if (done.length === 0) throw pathRefused(`${path} is the workspace itself, not a file`);
  return done;
}

function outside(path: string): LobuError {
  return pathRefused(
    `${path} is outside the workspace`,
    `Only files under ${SANDBOX_WORKSPACE} (your home and working directory) can be sent; copy the file there first.`,
  );
}

/** Parts of a sandbox path below /workspace (relative paths are relative to it). */
function toParts(path: string, shown = path): string[] {
  const expanded =
    path === "~"
      ? SANDBOX_WORKSPACE
      : path.startsWith("~/")
        ? SANDBOX_WORKSPACE + path.slice(1)
        : path;
  const abs = posix.resolve(SANDBOX_WORKSPACE, expanded);
  if (abs !== SANDBOX_WORKSPACE && !abs.startsWith(`${SANDBOX_WORKSPACE}/`)) throw outside(shown);
  // Not normalized further: `..` is applied after the links before it are resolved.
  const rel = posix.isAbsolute(expanded) ? expanded.slice(SANDBOX_WORKSPACE.length) : expanded;
  return rel.split("/");
}

/**
 * Read a regular file of the volume (`parts` from resolveInVolume), opening
 * every step without following links: one swapped in meanwhile is refused.
 * Devices, FIFOs, sockets and folders are refused; so is a file over
 * `maxBytes` (also one that grows past it while read).
 */
export async function readFromVolume(
  volumeDir: string,
  parts: string[],
  maxBytes: number,
): Promise<Buffer> {
  const shown = `~/${parts.join("/")}`;
  const handles = await walk(volumeDir, parts.slice(0, -1), { create: false });
  try {
    let file: FileHandle;
    try {
      file = await open(
        at(handles.at(-1)!, parts.at(-1)!),
        constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
      );
    } catch (err) {
      if (errno(err) === "ELOOP") throw pathRefused(`${shown} changed while it was read`);
      if (errno(err) === "ENOENT") throw pathRefused(`${shown} does not exist`);
      throw err;
    }
    try {
      const st = await file.stat();
      if (!st.isFile()) throw pathRefused(`${shown} is not a regular file`);
      if (st.size > maxBytes) throw tooLarge(shown, st.size, maxBytes);
      const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
      let filled = 0;
      for (;;) {
        const { bytesRead } = await file.read(buf, filled, buf.length - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
        if (filled > maxBytes) throw tooLarge(shown, filled, maxBytes);
        if (filled === buf.length) break;
      }
      return buf.subarray(0, filled);
    } finally {
      await file.close();
    }
  } finally {
    await closeAll(handles);
  }
}

function tooLarge(shown: string, size: number, maxBytes: number): LobuError {
  return new LobuError(
    "file_too_large",
    `${shown} is ${mib(size)}; files sent are at most ${mib(maxBytes)}`,
    { status: 413, hint: "Send a smaller file (compress it, or split it)." },
  );
}

/** `12.3 MiB`, `512 KiB`, `80 bytes`. */
export function mib(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1).replace(/\.0$/, "")} MiB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`;
  return `${bytes} bytes`;
}

/**
 * Bytes of the regular files under `<volume>/<dir>`, for the per-conversation
 * limit. Links are neither counted nor followed, `dir` itself included (a
 * link planted there counts as nothing).
 */
export async function bytesUnder(volumeDir: string, dir: string): Promise<number> {
  let handles: FileHandle[];
  try {
    handles = await walk(volumeDir, [dir], { create: false });
  } catch {
    return 0;
  }
  let total = 0;
  let entries = 0;
  const visit = async (path: string): Promise<void> => {
    let list: Dirent[];
    try {
      list = await readdir(path, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of list) {
      if (++entries > 100_000) return;
      const p = join(path, e.name);
      if (e.isDirectory()) await visit(p);
      else if (e.isFile()) total += (await lstat(p).catch(() => undefined))?.size ?? 0;
    }
  };
  try {
    await visit(`/proc/self/fd/${handles.at(-1)!.fd}`);
  } finally {
    await closeAll(handles);
  }
  return total;
}
