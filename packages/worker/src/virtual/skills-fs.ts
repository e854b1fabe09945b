import { type IFileSystem, type MkdirOptions, ReadWriteFs } from "just-bash";
import { DelegatingFs } from "./delegating-fs.ts";
import { SKILLS_DIR, toVirtual, VirtualFsError } from "./paths.ts";

/** Every change under /skills is refused, naming the agent's path (not the mount's). */
class ReadOnlySkillsFs extends DelegatingFs {
  #refuse(path: string): never {
    throw new VirtualFsError(
      "EROFS",
      `EROFS: read-only file system, '${toVirtual(SKILLS_DIR, path)}': skill files are read-only; copy what you want to change into /workspace`,
    );
  }
  async writeFile(path: string): Promise<void> {
    this.#refuse(path);
  }
  async appendFile(path: string): Promise<void> {
    this.#refuse(path);
  }
  async mkdir(path: string, options?: MkdirOptions): Promise<void> {
    // `mkdir -p` (and the write tool) walk through folders that exist: not a change.
    if (options?.recursive && (await this.inner.exists(path))) return;
    this.#refuse(path);
  }
  async rm(path: string): Promise<void> {
    this.#refuse(path);
  }
  async cp(_src: string, dest: string): Promise<void> {
    this.#refuse(dest);
  }
  async mv(src: string): Promise<void> {
    this.#refuse(src);
  }
  async chmod(path: string): Promise<void> {
    this.#refuse(path);
  }
  async symlink(_target: string, linkPath: string): Promise<void> {
    this.#refuse(linkPath);
  }
  async link(_existing: string, newPath: string): Promise<void> {
    this.#refuse(newPath);
  }
  async utimes(path: string): Promise<void> {
    this.#refuse(path);
  }
}

/**
 * The mount of a sandbox's skill files at /skills: the host folder the gateway
 * fills (a copy of each installed skill), read-only. The gateway writes no
 * links there, and none are followed.
 */
export function skillsMount(
  skillsDir: string | undefined,
): { mountPoint: string; filesystem: IFileSystem }[] {
  if (!skillsDir) return [];
  return [
    {
      mountPoint: SKILLS_DIR,
      filesystem: new ReadOnlySkillsFs(new ReadWriteFs({ root: skillsDir, allowSymlinks: false })),
    },
  ];
}
