import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The starter skills shipped with Lobu: one folder per skill under
 * `starter/`, each a SKILL.md in the Agent Skills format plus what it ships.
 * `lobu skills add <name>` copies one into a project's `skills/` folder.
 */
export const STARTER_SKILLS_DIR = fileURLToPath(new URL("../starter/", import.meta.url));

/** This package's version, recorded in skills-lock.json for starter skills. */
export const STARTER_SKILLS_VERSION: string = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

/** The names of the starter skills (their folder names). */
export function starterSkillNames(): string[] {
  return readdirSync(STARTER_SKILLS_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(STARTER_SKILLS_DIR, e.name, "SKILL.md")))
    .map((e) => e.name)
    .sort();
}

/** The folder of starter skill `name`, if there is one. */
export function starterSkillDir(name: string): string | undefined {
  return starterSkillNames().includes(name) ? join(STARTER_SKILLS_DIR, name) : undefined;
}
