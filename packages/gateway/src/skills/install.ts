import { randomUUID } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
} from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { type LobuConfig, LobuError } from "@lobu/core";
import { copySkillTree, skillDigest, skillTree } from "./files.ts";
import {
  describeSource,
  type LockEntry,
  readLock,
  type SkillSourceRecord,
  writeLock,
} from "./lock.ts";
import { agentsUsing } from "./needs.ts";
import { projectSkillsRoot, skillFileIn } from "./project.ts";
import { parseSkillMd, SKILL_FILE, type SkillManifest } from "./skill-md.ts";
import { fetchSource, type SourceRequest } from "./sources.ts";

/**
 * `lobu skills add | remove | restore`: skills installed into the project's
 * `skills/<name>/` (so they travel with the project and load like its own),
 * each recorded in skills-lock.json with its source, the commit or version it
 * resolved to and the digest of what was copied.
 */

export interface AddSkillOptions extends Omit<SourceRequest, "projectDir"> {
  projectDir: string;
  /** Replace a skill of the same name that `lobu skills add` installed before. */
  force?: boolean;
  /** lobu.toml, so a name it declares under [skills.*] is refused. */
  config?: LobuConfig;
}

export interface AddSkillResult {
  name: string;
  dir: string;
  manifest: SkillManifest;
  entry: LockEntry;
  status: "installed" | "updated" | "unchanged";
  /** Entries of the source left out (links, devices). */
  skipped: string[];
}

const IGNORED_WHEN_SEARCHING = new Set([".git", "node_modules"]);

/** Skill folders (with a SKILL.md) up to three levels below `root`, relative paths. */
function findSkillFolders(root: string, depth = 0): string[] {
  if (depth > 3) return [];
  const out: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory() || IGNORED_WHEN_SEARCHING.has(entry.name)) continue;
    const dir = join(root, entry.name);
    if (skillFileIn(dir)) out.push(entry.name);
    else out.push(...findSkillFolders(dir, depth + 1).map((d) => `${entry.name}/${d}`));
  }
  return out.sort();
}

/** The skill folder in what was fetched: `subdir`, the root, or its only skill folder. */
function locateSkill(root: string, subdir: string | undefined, what: string): string {
  if (subdir) {
    const dir = resolve(root, subdir);
    const real = existsSync(dir) ? realpathSync(dir) : dir;
    const realRoot = realpathSync(root);
    if (real !== realRoot && !real.startsWith(realRoot + sep))
      throw new LobuError("skill_invalid", `${what}: --path ${subdir} leads out of the source`, {
        hint: "Give a folder inside the repository or package.",
      });
    if (!existsSync(dir) || !skillFileIn(dir))
      throw new LobuError("skill_invalid", `${what}: no ${SKILL_FILE} in ${subdir}`, {
        hint: listHint(root),
      });
    return dir;
  }
  if (skillFileIn(root)) return root;
  const found = findSkillFolders(root);
  if (found.length === 1) return join(root, found[0]!);
  throw new LobuError(
    "skill_invalid",
    found.length
      ? `${what} holds ${found.length} skills: ${found.join(", ")}`
      : `${what}: no ${SKILL_FILE} found`,
    {
      hint: found.length
        ? "Choose one with --path <folder> (or url#ref:<folder>)."
        : listHint(root),
    },
  );
}

function listHint(root: string): string {
  const found = findSkillFolders(root);
  return found.length
    ? `Skill folders there: ${found.join(", ")}; choose one with --path.`
    : "A skill is a folder with a SKILL.md (see docs/skills.md).";
}

/** Copy `from` into the project as skill `name`, replacing what is there (never half a skill). */
function place(projectDir: string, name: string, from: string): string {
  const root = projectSkillsRoot(projectDir);
  mkdirSync(root, { recursive: true });
  const target = join(root, name);
  const staging = join(root, `.adding-${randomUUID()}`);
  try {
    copySkillTree(from, staging);
    if (existsSync(target)) {
      const old = join(root, `.removing-${randomUUID()}`);
      renameSync(target, old);
      rmSync(old, { recursive: true, force: true });
    }
    renameSync(staging, target);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return target;
}

function declaredInToml(name: string, config: LobuConfig | undefined): void {
  if (config?.skills[name])
    throw new LobuError(
      "skill_conflict",
      `lobu.toml declares a skill "${name}" ([skills.${name}])`,
      {
        hint: "Skill names are unique: remove that section, or install a skill with another name.",
      },
    );
}

export async function addSkill(opts: AddSkillOptions): Promise<AddSkillResult> {
  const fetched = await fetchSource({ ...opts, projectDir: opts.projectDir });
  try {
    return install(opts, fetched.root, fetched.subdir, fetched.record);
  } finally {
    fetched.cleanup();
  }
}

function install(
  opts: Pick<AddSkillOptions, "projectDir" | "config" | "force">,
  root: string,
  subdir: string | undefined,
  record: SkillSourceRecord,
  expectedDigest?: string,
): AddSkillResult {
  const what = describeSource(record);
  const dir = locateSkill(root, subdir, what);
  const file = skillFileIn(dir)!;
  const manifest = parseSkillMd(readFileSync(file, "utf8"), {
    file: `${what}: ${relative(root, file) || SKILL_FILE}`,
  });
  const { name } = manifest;
  declaredInToml(name, opts.config);
  const tree = skillTree(dir);
  const digest = skillDigest(dir, tree);
  if (expectedDigest && digest !== expectedDigest)
    throw new LobuError(
      "skill_fetch_failed",
      `${what} is not what skills-lock.json recorded for "${name}" (digest ${digest}, recorded ${expectedDigest})`,
      { hint: "The source changed since it was installed: add it again to take the new version." },
    );
  const lock = readLock(opts.projectDir);
  const target = join(projectSkillsRoot(opts.projectDir), name);
  const previous = lock.skills[name];
  let status: AddSkillResult["status"] = "installed";
  if (existsSync(target)) {
    if (!previous)
      throw new LobuError(
        "skill_conflict",
        `skills/${name}/ exists and is the project's own skill`,
        {
          hint: `Skill names are unique: remove or rename skills/${name}/ first.`,
        },
      );
    const current = skillDigest(target);
    if (current === digest) status = "unchanged";
    else if (!opts.force)
      throw new LobuError(
        "skill_conflict",
        `"${name}" is installed already (${describeSource(previous.source)})`,
        {
          hint: "Add --force to replace it with this one.",
        },
      );
    else status = "updated";
  }
  if (status !== "unchanged") place(opts.projectDir, name, dir);
  const entry: LockEntry = { source: record, digest, installedAt: new Date().toISOString() };
  writeLock(opts.projectDir, { ...lock, skills: { ...lock.skills, [name]: entry } });
  return { name, dir: target, manifest, entry, status, skipped: tree.skipped };
}

export interface RemoveSkillResult {
  name: string;
  removedFolder: boolean;
  hadLockEntry: boolean;
  /** lobu.toml agents that still list it (the gateway refuses to start until they do not). */
  stillUsedBy: string[];
}

export function removeSkill(opts: {
  projectDir: string;
  name: string;
  config?: LobuConfig;
}): RemoveSkillResult {
  const { projectDir, name, config } = opts;
  if (config?.skills[name])
    throw new LobuError("skill_conflict", `"${name}" is declared in lobu.toml ([skills.${name}])`, {
      hint: "Remove that section from lobu.toml instead.",
    });
  if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(name))
    throw new LobuError("skill_not_found", `there is no skill "${name}"`, { status: 404 });
  const lock = readLock(projectDir);
  const target = join(projectSkillsRoot(projectDir), name);
  const removedFolder = existsSync(target);
  const hadLockEntry = name in lock.skills;
  if (!removedFolder && !hadLockEntry)
    throw new LobuError(
      "skill_not_found",
      `there is no skill "${name}" in ${projectSkillsRoot(projectDir)}`,
      {
        hint: "`lobu skills list` shows the skills and where each comes from.",
      },
    );
  if (removedFolder) rmSync(target, { recursive: true, force: true });
  if (hadLockEntry) {
    const { [name]: _gone, ...rest } = lock.skills;
    writeLock(projectDir, { ...lock, skills: rest });
  }
  return {
    name,
    removedFolder,
    hadLockEntry,
    stillUsedBy: config ? agentsUsing({ name }, config) : [],
  };
}

/** The source to fetch again for a lock entry: pinned to what was installed. */
function pinned(record: SkillSourceRecord): Pick<SourceRequest, "spec" | "kind" | "ref" | "path"> {
  switch (record.kind) {
    case "git":
      return {
        spec: record.url,
        kind: "git",
        ref: record.commit,
        ...(record.subdir ? { path: record.subdir } : {}),
      };
    case "npm": {
      const tarball = /\.(tgz|tar\.gz)$/.test(record.spec);
      return {
        spec: tarball ? record.spec : `${record.package}@${record.version}`,
        kind: "npm",
        ...(record.subdir ? { path: record.subdir } : {}),
      };
    }
    case "path":
      return { spec: record.path, kind: "path" };
    case "starter":
      return { spec: record.name, kind: "starter" };
  }
}

/**
 * Install again every skill of skills-lock.json whose folder is missing (a
 * fresh checkout that does not commit `skills/`), from its recorded source
 * pinned to the recorded commit or version, and check it is exactly what was
 * installed (the digest).
 */
export async function restoreSkills(opts: {
  projectDir: string;
  config?: LobuConfig;
}): Promise<{ restored: string[]; present: string[] }> {
  const lock = readLock(opts.projectDir);
  const restored: string[] = [];
  const present: string[] = [];
  for (const [name, entry] of Object.entries(lock.skills)) {
    if (existsSync(join(projectSkillsRoot(opts.projectDir), name))) {
      present.push(name);
      continue;
    }
    const source = pinned(entry.source);
    const fetched = await fetchSource({
      ...source,
      cwd: opts.projectDir,
      projectDir: opts.projectDir,
    });
    try {
      const result = install(opts, fetched.root, fetched.subdir, entry.source, entry.digest);
      if (result.name !== name)
        throw new LobuError(
          "skill_fetch_failed",
          `the source recorded for "${name}" now holds "${result.name}"`,
        );
      restored.push(name);
    } finally {
      fetched.cleanup();
    }
  }
  return { restored, present };
}
