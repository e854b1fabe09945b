import { type IFileSystem, ReadWriteFs } from "just-bash";
import { ReadOnlyFs } from "./base-fs.ts";
import { SKILLS_DIR } from "./paths.ts";

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
      filesystem: new ReadOnlyFs(new ReadWriteFs({ root: skillsDir, allowSymlinks: false })),
    },
  ];
}
