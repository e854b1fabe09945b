import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, resolve } from "node:path";
import { type LobuConfig, LobuError, type SkillSection, type SkillSpec } from "@lobu/core";
import { skillDigest, skillTree } from "./files.ts";
import { type LockEntry, readLock } from "./lock.ts";
import { projectSkillDirs, skillFileIn } from "./project.ts";
import { parseSkillMd, SKILL_FILE, type SkillManifest } from "./skill-md.ts";

/** Where a skill comes from: lobu.toml, the project's `skills/` folder, or installed there. */
export type SkillOrigin = "config" | "project" | "installed";

export interface Skill extends SkillSpec {
  domains: string[];
  packages: string[];
  mcp: string[];
  origin: SkillOrigin;
  /**
   * Where its needs are written, for messages: `lobu.toml: skills.<id>` or
   * `<folder>/SKILL.md: metadata.lobu` (append `.domains`, `.mcp`, ...).
   */
  where: string;
  /** Host folder holding SKILL.md and what it ships; absent for inline skills. */
  dir?: string;
  /** skillDigest() of `dir`. */
  digest?: string;
  /** Installed with `lobu skills add`: where from (skills-lock.json). */
  lock?: LockEntry;
  license?: string;
  compatibility?: string;
  allowedTools?: string;
}

export interface SkillCatalogOptions {
  /**
   * The project folder: its `skills/<name>/SKILL.md` are loaded and its
   * skills-lock.json read. Default: the folder of lobu.toml (none without one).
   */
  projectDir?: string;
}

/** A [skills.<id>] path that names a skill folder (a folder, or a file called SKILL.md). */
function isSkillFolderPath(file: string): boolean {
  return (
    (existsSync(file) && statSync(file).isDirectory()) ||
    basename(file).toUpperCase() === SKILL_FILE.toUpperCase()
  );
}

/** The lenient reading of a plain Markdown file named by [skills.<id>] path: front matter stripped. */
function plainMarkdown(text: string): { description?: string; body: string } {
  const m = /^\uFEFF?---\r?\n([\s\S]*?)\r?\n---\r?\n?/.exec(text);
  if (!m) return { body: text };
  const description = /^description:\s*(.+)$/m
    .exec(m[1]!)?.[1]
    ?.trim()
    .replace(/^["']|["']$/g, "");
  return { description, body: text.slice(m[0].length) };
}

function readText(file: string, key: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new LobuError("config_invalid", `${key}: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** A skill folder read from disk: its manifest, digest and what its walk left out. */
function loadFolder(
  dir: string,
  opts: { dirName?: string },
): { manifest: SkillManifest; file: string; digest: string; skipped: string[] } {
  const file = skillFileIn(dir);
  if (!file)
    throw new LobuError("skill_invalid", `${dir}: no ${SKILL_FILE} in this folder`, {
      hint: "A skill is a folder with a SKILL.md (see docs/skills.md).",
    });
  const manifest = parseSkillMd(readFileSync(file, "utf8"), { file, ...opts });
  const tree = skillTree(dir);
  return { manifest, file, digest: skillDigest(dir, tree), skipped: tree.skipped };
}

const union = (a: string[], b: string[]) => [...new Set([...a, ...b])];

/**
 * Every skill of this installation: declared in lobu.toml (`[skills.<id>]`,
 * inline instructions or a SKILL.md), the project's own folders under
 * `skills/`, and those `lobu skills add` installed there (recorded in
 * skills-lock.json). Names are unique across all of them. A skill brings
 * instructions, files and needs (domains, packages, MCP servers, secrets);
 * tool visibility and approvals stay in the agent's policy, not here.
 */
export class SkillCatalog {
  private readonly skills = new Map<string, Skill>();
  /** The project folder skills were loaded from, if any. */
  readonly projectDir: string | undefined;
  /** What loading noticed but did not refuse (logged at startup, shown by `lobu doctor`). */
  readonly warnings: string[] = [];

  constructor(config: LobuConfig, configPath?: string, opts: SkillCatalogOptions = {}) {
    const configFile = configPath ?? "lobu.toml";
    const base = configPath ? dirname(configPath) : process.cwd();
    this.projectDir = opts.projectDir ?? (configPath ? dirname(configPath) : undefined);
    const configDirs = new Map<string, string>();
    for (const [name, section] of Object.entries(config.skills)) {
      const skill = this.fromConfig(name, section, base, configFile);
      if (skill.dir) configDirs.set(skill.dir, name);
      this.skills.set(name, skill);
    }
    if (this.projectDir) this.loadProject(this.projectDir, configDirs);
  }

  private fromConfig(name: string, s: SkillSection, base: string, configFile: string): Skill {
    const key = `${configFile}: skills.${name}`;
    const skill: Skill = {
      name,
      description: s.description,
      instructions: s.instructions,
      files: false,
      domains: s.domains,
      packages: s.packages,
      mcp: s.mcp,
      secrets: s.secrets,
      origin: "config",
      where: key,
    };
    if (!s.path) return skill;
    const file = isAbsolute(s.path) ? s.path : resolve(base, s.path);
    if (!isSkillFolderPath(file)) {
      const parsed = plainMarkdown(readText(file, `${key}.path`));
      return {
        ...skill,
        instructions: parsed.body,
        description: s.description || parsed.description || "",
      };
    }
    if (!existsSync(file)) readText(file, `${key}.path`);
    const dir = realpathSync(statSync(file).isDirectory() ? file : dirname(file));
    const folder = loadFolder(dir, {});
    const m = folder.manifest;
    if (m.name !== name)
      throw new LobuError(
        "skill_invalid",
        `${key}.path: ${folder.file} is the skill "${m.name}"; name the section [skills.${m.name}]`,
      );
    this.noteSkipped(dir, folder.skipped);
    return {
      ...skill,
      description: s.description || m.description,
      instructions: m.instructions,
      files: true,
      domains: union(m.needs.domains, s.domains),
      packages: union(m.needs.packages, s.packages),
      mcp: union(m.needs.mcp, s.mcp),
      secrets: union(m.needs.secrets, s.secrets),
      dir,
      digest: folder.digest,
      ...optional(m),
    };
  }

  private loadProject(projectDir: string, configDirs: Map<string, string>): void {
    const lock = readLock(projectDir);
    const found = projectSkillDirs(projectDir);
    this.warnings.push(...found.ignored);
    for (const dir of found.dirs) {
      if (configDirs.has(dir)) continue; // declared in lobu.toml too: that entry is the skill
      const folder = loadFolder(dir, { dirName: basename(dir) });
      const m = folder.manifest;
      const other = this.skills.get(m.name);
      if (other)
        throw new LobuError(
          "skill_conflict",
          `two skills are named "${m.name}": ${folder.file} and ${other.where}`,
          {
            hint: `Skill names are unique: rename one of them, or point [skills.${m.name}] path at ${dir}.`,
          },
        );
      const entry = lock.skills[m.name];
      if (entry && entry.digest !== folder.digest)
        this.warnings.push(
          `${folder.file}: changed since \`lobu skills add\` installed it (skills-lock.json has another digest); add it again to restore it, or remove its lock entry to make it the project's own`,
        );
      this.noteSkipped(dir, folder.skipped);
      this.skills.set(m.name, {
        name: m.name,
        description: m.description,
        instructions: m.instructions,
        files: true,
        ...m.needs,
        origin: entry ? "installed" : "project",
        where: `${folder.file}: metadata.lobu`,
        dir,
        digest: folder.digest,
        ...(entry ? { lock: entry } : {}),
        ...optional(m),
      });
    }
    for (const name of Object.keys(lock.skills))
      if (!this.skills.has(name))
        this.warnings.push(
          `skills-lock.json names "${name}", but skills/${name}/ is missing: run \`lobu skills add\` with its source again, or \`lobu skills remove ${name}\``,
        );
  }

  private noteSkipped(dir: string, skipped: string[]): void {
    if (skipped.length)
      this.warnings.push(
        `${dir}: left out of the skill (not regular files: links or devices): ${skipped.slice(0, 5).join(", ")}${skipped.length > 5 ? ", ..." : ""}`,
      );
  }

  list(): Skill[] {
    return [...this.skills.values()];
  }

  get(name: string): Skill | undefined {
    return this.skills.get(name);
  }

  /** Known skills among `names`, in order, without duplicates. */
  pick(names: string[]): Skill[] {
    return [...new Set(names)].flatMap((n) => (this.skills.has(n) ? [this.skills.get(n)!] : []));
  }
}

function optional(m: SkillManifest): Pick<Skill, "license" | "compatibility" | "allowedTools"> {
  return {
    ...(m.license !== undefined ? { license: m.license } : {}),
    ...(m.compatibility !== undefined ? { compatibility: m.compatibility } : {}),
    ...(m.allowedTools !== undefined ? { allowedTools: m.allowedTools } : {}),
  };
}
