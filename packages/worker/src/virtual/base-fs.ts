import {
  Bash,
  type BufferEncoding,
  type ByteString,
  type CpOptions,
  type FileContent,
  type FsStat,
  type IFileSystem,
  InMemoryFs,
  type MkdirOptions,
  type RmOptions,
  unsafeBytesFromLatin1,
} from "just-bash";
import { TMP_DIR, VirtualFsError, WORKSPACE_DIR } from "./paths.ts";

type ReadOptions = Parameters<IFileSystem["readFile"]>[1];
type WriteOptions = Parameters<IFileSystem["writeFile"]>[2];

const DEV_NULL = "/dev/null";

/** Raw bytes as just-bash's latin1 ByteString, for wrappers that delegate to another fs. */
export async function readBytes(fs: IFileSystem, path: string): Promise<ByteString> {
  if (fs.readFileBytes) return fs.readFileBytes(path);
  return unsafeBytesFromLatin1(Buffer.from(await fs.readFileBuffer(path)).toString("latin1"));
}

function readOnly(path: string): never {
  throw new VirtualFsError(
    "EROFS",
    `EROFS: read-only file system, '${path}': only ${WORKSPACE_DIR} and ${TMP_DIR} are writable`,
  );
}

/**
 * The directory tree outside /workspace and /tmp (/bin stubs, /dev, /proc, /usr/bin):
 * one immutable instance shared by every session in the process, so sessions pay
 * nothing for it. Writes are refused, except that /dev/null swallows them (with the
 * plain in-memory layout `echo x > /dev/null` would store "x").
 */
class ReadOnlyFs implements IFileSystem {
  readonly #inner: IFileSystem;
  constructor(inner: IFileSystem) {
    this.#inner = inner;
  }
  readFile(path: string, options?: ReadOptions): Promise<string> {
    return this.#inner.readFile(path, options);
  }
  readFileBuffer(path: string): Promise<Uint8Array> {
    return this.#inner.readFileBuffer(path);
  }
  readFileBytes(path: string): Promise<ByteString> {
    return readBytes(this.#inner, path);
  }
  async writeFile(path: string, _c: FileContent, _o?: WriteOptions | BufferEncoding) {
    if (path !== DEV_NULL) readOnly(path);
  }
  async appendFile(path: string, _c: FileContent, _o?: WriteOptions | BufferEncoding) {
    if (path !== DEV_NULL) readOnly(path);
  }
  exists(path: string): Promise<boolean> {
    return this.#inner.exists(path);
  }
  stat(path: string): Promise<FsStat> {
    return this.#inner.stat(path);
  }
  lstat(path: string): Promise<FsStat> {
    return this.#inner.lstat(path);
  }
  async mkdir(path: string, options?: MkdirOptions): Promise<void> {
    // `mkdir -p /tmp/x` walks through existing base directories; that must not fail.
    if (options?.recursive && (await this.#inner.exists(path))) return;
    readOnly(path);
  }
  readdir(path: string): Promise<string[]> {
    return this.#inner.readdir(path);
  }
  async rm(path: string, _o?: RmOptions): Promise<void> {
    readOnly(path);
  }
  async cp(_src: string, dest: string, _o?: CpOptions): Promise<void> {
    readOnly(dest);
  }
  async mv(src: string, _dest: string): Promise<void> {
    readOnly(src);
  }
  resolvePath(base: string, path: string): string {
    return this.#inner.resolvePath(base, path);
  }
  getAllPaths(): string[] {
    return this.#inner.getAllPaths();
  }
  async chmod(path: string, _mode: number): Promise<void> {
    readOnly(path);
  }
  async symlink(_target: string, linkPath: string): Promise<void> {
    readOnly(linkPath);
  }
  async link(_existing: string, newPath: string): Promise<void> {
    readOnly(newPath);
  }
  readlink(path: string): Promise<string> {
    return this.#inner.readlink(path);
  }
  realpath(path: string): Promise<string> {
    return this.#inner.realpath(path);
  }
  async utimes(path: string, _a: Date, _m: Date): Promise<void> {
    if (path !== DEV_NULL) readOnly(path);
  }
}

let shared: IFileSystem | undefined;

/** The process-wide read-only base layout (built on first use). */
export function sharedBaseFs(): IFileSystem {
  if (!shared) {
    const fs = new InMemoryFs();
    // Constructing a Bash over a fresh InMemoryFs with no cwd lays out /bin, /usr/bin,
    // /dev, /proc and a stub per command; the fetch makes the curl stub appear too.
    new Bash({ fs, fetch: async () => Promise.reject(new Error("unused")) });
    fs.mkdirSync(WORKSPACE_DIR, { recursive: true });
    fs.mkdirSync(TMP_DIR, { recursive: true });
    shared = new ReadOnlyFs(fs);
  }
  return shared;
}
