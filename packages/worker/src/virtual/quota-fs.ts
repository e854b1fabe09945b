import { posix } from "node:path";
import type {
  BufferEncoding,
  CpOptions,
  FileContent,
  FsStat,
  IFileSystem,
  MkdirOptions,
  RmOptions,
} from "just-bash";
import { DelegatingFs, type WriteOptions } from "./delegating-fs.ts";
import { assertPathShape, resolveWithinRoot, toVirtual, VirtualFsError } from "./paths.ts";

export interface QuotaLimits {
  /** Largest single file. */
  maxFileBytes: number;
  /** Total size of all files in the volume (including /tmp). */
  maxTotalBytes: number;
  /** Files, directories and links in the volume; stops inode floods of empty files. */
  maxEntries: number;
}

interface Measure {
  bytes: number;
  entries: number;
}

const NONE: Measure = { bytes: 0, entries: 0 };

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${Math.round((n / 1024 / 1024) * 10) / 10} MB`;
  if (n >= 1024) return `${Math.round((n / 1024) * 10) / 10} KB`;
  return `${n} bytes`;
}

function contentBytes(content: FileContent, options?: WriteOptions | BufferEncoding): number {
  if (typeof content !== "string") return content.byteLength;
  const encoding = typeof options === "string" ? options : options?.encoding;
  return Buffer.byteLength(content, encoding ?? "utf8");
}

async function lstatOrNull(fs: IFileSystem, path: string): Promise<FsStat | null> {
  try {
    return await fs.lstat(path);
  } catch {
    return null;
  }
}

/** Size and entry count of `path` and everything below it, without following symlinks. */
async function measure(fs: IFileSystem, path: string): Promise<Measure> {
  // ReadWriteFs refuses lstat on its own root.
  const top = path === "/" ? await fs.stat(path) : await lstatOrNull(fs, path);
  if (!top) return NONE;
  const total = { bytes: top.isFile ? top.size : 0, entries: 1 };
  const stack = top.isDirectory ? [path] : [];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const child = dir === "/" ? `/${name}` : `${dir}/${name}`;
      const st = await lstatOrNull(fs, child);
      if (!st) continue;
      total.entries++;
      if (st.isFile) total.bytes += st.size;
      else if (st.isDirectory) stack.push(child);
    }
  }
  return total;
}

/** Bytes and entries of one volume, with the checks every mutation makes. */
export class UsageCounter {
  bytes: number;
  entries: number;
  /** Set when a mutation's effect could not be predicted; the owner then walks again. */
  stale = false;
  readonly limits: QuotaLimits;

  constructor(limits: QuotaLimits, bytes = 0, entries = 0) {
    this.limits = limits;
    this.bytes = bytes;
    this.entries = entries;
  }

  invalidate(): void {
    this.stale = true;
  }

  add(delta: Measure): void {
    this.bytes = Math.max(0, this.bytes + delta.bytes);
    this.entries = Math.max(0, this.entries + delta.entries);
  }

  /** Throw ENOSPC if growing by `delta` would cross a limit. */
  check(delta: Measure, virtualPath: string): void {
    const { maxTotalBytes, maxEntries } = this.limits;
    if (delta.bytes > 0 && this.bytes + delta.bytes > maxTotalBytes) {
      throw new VirtualFsError(
        "ENOSPC",
        `ENOSPC: disk quota exceeded, write '${virtualPath}': the workspace is limited to ${formatBytes(maxTotalBytes)} and ${formatBytes(this.bytes)} is in use. Delete files you no longer need and try again.`,
      );
    }
    if (delta.entries > 0 && this.entries + delta.entries > maxEntries) {
      throw new VirtualFsError(
        "ENOSPC",
        `ENOSPC: disk quota exceeded, create '${virtualPath}': the workspace is limited to ${maxEntries} files and directories. Delete files you no longer need and try again.`,
      );
    }
  }

  checkFileSize(bytes: number, virtualPath: string): void {
    if (bytes > this.limits.maxFileBytes) {
      throw new VirtualFsError(
        "EFBIG",
        `EFBIG: file too large, write '${virtualPath}': files are limited to ${formatBytes(this.limits.maxFileBytes)}.`,
      );
    }
  }
}

/**
 * Where mutations get the volume's counter. Mutations run one at a time per volume so the
 * accounting cannot race; a shell thread borrows the counter from the main thread.
 */
export interface UsageLedger {
  serialize<T>(fn: (usage: UsageCounter) => Promise<T>): Promise<T>;
}

/**
 * The authoritative ledger of one volume. Computed by a walk on the first mutation after
 * the workspace wakes (nothing is stored while idle), then kept exact by deltas; the few
 * operations whose effect is hard to predict (copying onto an existing directory, partial
 * failures) mark it stale so the next mutation walks again.
 */
export class VolumeUsage implements UsageLedger {
  readonly #root: IFileSystem;
  readonly #counter: UsageCounter;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(root: IFileSystem, limits: QuotaLimits) {
    this.#root = root;
    this.#counter = new UsageCounter(limits);
    this.#counter.stale = true;
  }

  serialize<T>(fn: (usage: UsageCounter) => Promise<T>): Promise<T> {
    const run = this.#queue.then(async () => {
      const counter = this.#counter;
      if (counter.stale) {
        const m = await measure(this.#root, "/");
        counter.bytes = m.bytes;
        counter.entries = Math.max(0, m.entries - 1); // the root itself is free
        counter.stale = false;
      }
      return fn(counter);
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/**
 * A mounted volume directory (a just-bash ReadWriteFs) with quota accounting, symlink
 * confinement and no special permission bits. `mountPoint` is where the agent sees it.
 */
export class QuotaFs extends DelegatingFs {
  readonly #mountPoint: string;
  readonly #ledger: UsageLedger;

  constructor(inner: IFileSystem, mountPoint: string, ledger: UsageLedger) {
    super(inner);
    this.#mountPoint = mountPoint;
    this.#ledger = ledger;
  }

  #v(path: string): string {
    return toVirtual(this.#mountPoint, path);
  }

  writeFile(path: string, content: FileContent, options?: WriteOptions | BufferEncoding) {
    const size = contentBytes(content, options);
    return this.#ledger.serialize(async (usage) => {
      usage.checkFileSize(size, this.#v(path));
      const old = await lstatOrNull(this.inner, path);
      const delta = { bytes: size - (old?.isFile ? old.size : 0), entries: old ? 0 : 1 };
      usage.check(delta, this.#v(path));
      await this.inner.writeFile(path, content, options);
      usage.add(delta);
    });
  }

  appendFile(path: string, content: FileContent, options?: WriteOptions | BufferEncoding) {
    const size = contentBytes(content, options);
    return this.#ledger.serialize(async (usage) => {
      const old = await lstatOrNull(this.inner, path);
      usage.checkFileSize((old?.isFile ? old.size : 0) + size, this.#v(path));
      const delta = { bytes: size, entries: old ? 0 : 1 };
      usage.check(delta, this.#v(path));
      await this.inner.appendFile(path, content, options);
      usage.add(delta);
    });
  }

  mkdir(path: string, options?: MkdirOptions): Promise<void> {
    return this.#ledger.serialize(async (usage) => {
      let created = 0;
      for (let p = path; p !== "/" && !(await lstatOrNull(this.inner, p)); p = posix.dirname(p)) {
        created++;
        if (!options?.recursive) break;
      }
      const delta = { bytes: 0, entries: created };
      usage.check(delta, this.#v(path));
      await this.inner.mkdir(path, options);
      usage.add(delta);
    });
  }

  rm(path: string, options?: RmOptions): Promise<void> {
    return this.#ledger.serialize(async (usage) => {
      const freed = await measure(this.inner, path);
      try {
        await this.inner.rm(path, options);
      } catch (error) {
        usage.invalidate(); // a recursive rm may have removed part of the tree
        throw error;
      }
      usage.add({ bytes: -freed.bytes, entries: -freed.entries });
    });
  }

  cp(src: string, dest: string, options?: CpOptions): Promise<void> {
    return this.#ledger.serialize(async (usage) => {
      const copied = await measure(this.inner, src);
      const replaced = await lstatOrNull(this.inner, dest);
      const old = replaced?.isFile ? await measure(this.inner, dest) : NONE;
      const delta = { bytes: copied.bytes - old.bytes, entries: copied.entries - old.entries };
      usage.check(delta, this.#v(dest));
      try {
        await this.inner.cp(src, dest, options);
      } catch (error) {
        usage.invalidate();
        throw error;
      }
      if (replaced?.isDirectory) usage.invalidate();
      else usage.add(delta);
    });
  }

  mv(src: string, dest: string): Promise<void> {
    return this.#ledger.serialize(async (usage) => {
      const replaced = src === dest ? NONE : await measure(this.inner, dest);
      try {
        await this.inner.mv(src, dest);
      } catch (error) {
        usage.invalidate();
        throw error;
      }
      usage.add({ bytes: -replaced.bytes, entries: -replaced.entries });
    });
  }

  chmod(path: string, mode: number): Promise<void> {
    // No setuid/setgid/sticky bits on host files: the volume may later be mounted elsewhere.
    return this.inner.chmod(path, mode & 0o777);
  }

  utimes(path: string, atime: Date, mtime: Date): Promise<void> {
    return this.inner.utimes(path, atime, mtime);
  }

  symlink(target: string, linkPath: string): Promise<void> {
    return this.#ledger.serialize(async (usage) => {
      assertPathShape(target);
      const mp = this.#mountPoint;
      let inRoot: string | null;
      if (target.startsWith("/")) {
        inRoot =
          target === mp || target.startsWith(`${mp}/`) ? target.slice(mp.length) || "/" : null;
        if (inRoot !== null) inRoot = resolveWithinRoot("/", inRoot);
      } else {
        inRoot = resolveWithinRoot(posix.dirname(linkPath), target);
      }
      if (inRoot === null) {
        throw new VirtualFsError(
          "EACCES",
          `EACCES: symlink '${this.#v(linkPath)}' -> '${target}' refused: links may only point inside ${mp}.`,
        );
      }
      usage.check({ bytes: 0, entries: 1 }, this.#v(linkPath));
      // Stored relative, so the volume stays valid wherever it is mounted.
      const relative = posix.relative(posix.dirname(linkPath), inRoot) || ".";
      await this.inner.symlink(relative, linkPath);
      usage.add({ bytes: 0, entries: 1 });
    });
  }

  link(existingPath: string, newPath: string): Promise<void> {
    return this.#ledger.serialize(async (usage) => {
      const st = await lstatOrNull(this.inner, existingPath);
      const delta = { bytes: st?.isFile ? st.size : 0, entries: 1 };
      usage.check(delta, this.#v(newPath));
      await this.inner.link(existingPath, newPath);
      usage.add(delta);
    });
  }
}
