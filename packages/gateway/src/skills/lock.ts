import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeIssues, LobuError } from "@lobu/core";
import { z } from "zod";

/**
 * `skills-lock.json`, next to lobu.toml: where each skill `lobu skills add`
 * installed into `skills/` came from (the source as given, the commit or
 * version it resolved to) and the digest of what was copied, so an install
 * can be repeated exactly (`lobu skills add` of the recorded source, then the
 * digest compared) and a folder edited since is noticed. Skills written in the
 * project itself have no entry.
 */
export const LOCK_FILE = "skills-lock.json";

export const SkillSourceRecord = z.discriminatedUnion("kind", [
  /** A folder on this machine, copied. */
  z.strictObject({ kind: z.literal("path"), path: z.string() }),
  /** A git repository, cloned at `ref` (or its default branch) and pinned to `commit`. */
  z.strictObject({
    kind: z.literal("git"),
    url: z.string(),
    ref: z.string().optional(),
    /** Folder of the skill inside the repository. */
    subdir: z.string().optional(),
    commit: z.string(),
  }),
  /** An npm package (name, version, tarball or URL), as `npm pack` resolved it. */
  z.strictObject({
    kind: z.literal("npm"),
    spec: z.string(),
    package: z.string(),
    version: z.string(),
    integrity: z.string().optional(),
    subdir: z.string().optional(),
  }),
  /** A starter skill shipped with Lobu. */
  z.strictObject({ kind: z.literal("starter"), name: z.string(), version: z.string() }),
]);
export type SkillSourceRecord = z.infer<typeof SkillSourceRecord>;

export const LockEntry = z.strictObject({
  source: SkillSourceRecord,
  /** skillDigest() of the installed folder. */
  digest: z.string(),
  installedAt: z.string(),
});
export type LockEntry = z.infer<typeof LockEntry>;

export const SkillsLock = z.strictObject({
  version: z.literal(1),
  skills: z.record(z.string(), LockEntry),
});
export type SkillsLock = z.infer<typeof SkillsLock>;

export function lockPath(projectDir: string): string {
  return join(projectDir, LOCK_FILE);
}

export function readLock(projectDir: string): SkillsLock {
  const path = lockPath(projectDir);
  if (!existsSync(path)) return { version: 1, skills: {} };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new LobuError("skill_invalid", `${path}: not valid JSON: ${(err as Error).message}`, {
      hint: `${LOCK_FILE} is written by \`lobu skills add\`; restore it from version control or delete it (installed skills then count as the project's own).`,
    });
  }
  const parsed = SkillsLock.safeParse(raw);
  if (!parsed.success)
    throw new LobuError("skill_invalid", describeIssues(path, parsed.error.issues), {
      hint: `${LOCK_FILE} is written by \`lobu skills add\`; restore it from version control.`,
    });
  return parsed.data;
}

/** Write the lock atomically, skills sorted by name (stable diffs). */
export function writeLock(projectDir: string, lock: SkillsLock): void {
  const sorted: SkillsLock = {
    version: 1,
    skills: Object.fromEntries(Object.entries(lock.skills).sort(([a], [b]) => a.localeCompare(b))),
  };
  const path = lockPath(projectDir);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(sorted, null, 2)}\n`);
  renameSync(tmp, path);
}

/** One line naming where a skill came from. */
export function describeSource(source: SkillSourceRecord): string {
  switch (source.kind) {
    case "path":
      return `path ${source.path}`;
    case "git":
      return `git ${source.url}${source.subdir ? ` (${source.subdir})` : ""} @ ${source.commit.slice(0, 12)}`;
    case "npm":
      return `npm ${source.package}@${source.version}${source.subdir ? ` (${source.subdir})` : ""}`;
    case "starter":
      return `starter skill ${source.name} (Lobu ${source.version})`;
  }
}
