import { Bash, type IFileSystem, InMemoryFs, type MkdirOptions } from "just-bash";
import { DelegatingFs } from "./delegating-fs.ts";
import { TMP_DIR, VirtualFsError, WORKSPACE_DIR } from "./paths.ts";

const DEV_NULL = "/dev/null";

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
export class ReadOnlyFs extends DelegatingFs {
  async writeFile(path: string) {
    if (path !== DEV_NULL) readOnly(path);
  }
  async appendFile(path: string) {
    if (path !== DEV_NULL) readOnly(path);
  }
  async mkdir(path: string, options?: MkdirOptions): Promise<void> {
    // `mkdir -p /tmp/x` walks through existing base directories; that must not fail.
    if (options?.recursive && (await this.inner.exists(path))) return;
    readOnly(path);
  }
  async rm(path: string): Promise<void> {
    readOnly(path);
  }
  async cp(_src: string, dest: string): Promise<void> {
    readOnly(dest);
  }
  async mv(src: string): Promise<void> {
    readOnly(src);
  }
  async chmod(path: string): Promise<void> {
    readOnly(path);
  }
  async symlink(_target: string, linkPath: string): Promise<void> {
    readOnly(linkPath);
  }
  async link(_existing: string, newPath: string): Promise<void> {
    readOnly(newPath);
  }
  async utimes(path: string): Promise<void> {
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
