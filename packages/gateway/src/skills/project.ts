import { existsSync, lstatSync, readdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { SKILL_FILE } from "./skill-md.ts";

/**
 * A project's own skills: `skills/<name>/SKILL.md` next to lobu.toml, written
 * there by hand or installed by `lobu skills add`. They are loaded whenever the
 * gateway starts from that project.
 */
export const PROJECT_SKILLS_DIR = "skills";

export function projectSkillsRoot(projectDir: string): string {
  return join(projectDir, PROJECT_SKILLS_DIR);
}

/** The SKILL.md of a folder (the spec's name; `skill.md` is accepted as other readers do). */
export function skillFileIn(dir: string): string | undefined {
  for (const name of [SKILL_FILE, "skill.md"]) {
    const file = join(dir, name);
    if (existsSync(file) && lstatSync(file).isFile()) return file;
  }
  return undefined;
}

/**
 * The skill folders under the project's `skills/` (real paths, sorted), and
 * what was there but is not one (named in a warning). Hidden entries are not
 * looked at.
 */
export function projectSkillDirs(projectDir: string): { dirs: string[]; ignored: string[] } {
  const root = projectSkillsRoot(projectDir);
  const dirs: string[] = [];
  const ignored: string[] = [];
  if (!existsSync(root)) return { dirs, ignored };
  for (const name of readdirSync(root).sort()) {
    if (name.startsWith(".")) continue;
    const path = join(root, name);
    if (!lstatSync(path).isDirectory()) continue;
    if (skillFileIn(path)) dirs.push(realpathSync(path));
    else ignored.push(`${path}: no ${SKILL_FILE} in this folder, so it is not a skill (ignored)`);
  }
  return { dirs, ignored };
}
