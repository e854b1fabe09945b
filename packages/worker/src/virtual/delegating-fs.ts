import {
  type BufferEncoding,
  type ByteString,
  type CpOptions,
  type FileContent,
  type FsStat,
  type IFileSystem,
  type MkdirOptions,
  type RmOptions,
  unsafeBytesFromLatin1,
} from "just-bash";

export type ReadOptions = Parameters<IFileSystem["readFile"]>[1];
export type WriteOptions = Parameters<IFileSystem["writeFile"]>[2];

/** Raw bytes as just-bash's latin1 ByteString, for wrappers that delegate to another fs. */
export async function readBytes(fs: IFileSystem, path: string): Promise<ByteString> {
  if (fs.readFileBytes) return fs.readFileBytes(path);
  return unsafeBytesFromLatin1(Buffer.from(await fs.readFileBuffer(path)).toString("latin1"));
}

/**
 * A filesystem that reads straight from `inner`; subclasses decide what each
 * change does (refuse it, or check and account for it first).
 */
export abstract class DelegatingFs implements IFileSystem {
  protected readonly inner: IFileSystem;

  constructor(inner: IFileSystem) {
    this.inner = inner;
  }

  readFile(path: string, options?: ReadOptions): Promise<string> {
    return this.inner.readFile(path, options);
  }
  readFileBuffer(path: string): Promise<Uint8Array> {
    return this.inner.readFileBuffer(path);
  }
  readFileBytes(path: string): Promise<ByteString> {
    return readBytes(this.inner, path);
  }
  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }
  stat(path: string): Promise<FsStat> {
    return this.inner.stat(path);
  }
  lstat(path: string): Promise<FsStat> {
    return this.inner.lstat(path);
  }
  readdir(path: string): Promise<string[]> {
    return this.inner.readdir(path);
  }
  resolvePath(base: string, path: string): string {
    return this.inner.resolvePath(base, path);
  }
  getAllPaths(): string[] {
    return this.inner.getAllPaths();
  }
  readlink(path: string): Promise<string> {
    return this.inner.readlink(path);
  }
  realpath(path: string): Promise<string> {
    return this.inner.realpath(path);
  }

  abstract writeFile(
    path: string,
    content: FileContent,
    options?: WriteOptions | BufferEncoding,
  ): Promise<void>;
  abstract appendFile(
    path: string,
    content: FileContent,
    options?: WriteOptions | BufferEncoding,
  ): Promise<void>;
  abstract mkdir(path: string, options?: MkdirOptions): Promise<void>;
  abstract rm(path: string, options?: RmOptions): Promise<void>;
  abstract cp(src: string, dest: string, options?: CpOptions): Promise<void>;
  abstract mv(src: string, dest: string): Promise<void>;
  abstract chmod(path: string, mode: number): Promise<void>;
  abstract symlink(target: string, linkPath: string): Promise<void>;
  abstract link(existingPath: string, newPath: string): Promise<void>;
  abstract utimes(path: string, atime: Date, mtime: Date): Promise<void>;
}
