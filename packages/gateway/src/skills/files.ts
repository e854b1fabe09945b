import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
} from "node:fs";
import { join, relative, sep } from "node:path";
import { LobuError } from "@lobu/core";

/**
 * The files of a skill folder: what is copied when it is installed, hashed for
 * the lock file and shown to the agent. Only regular files and directories
 * count; symbolic links (which could point anywhere on the machine that copies
 * them) and special files are left out and reported. Version-control folders
 * are not part of a skill.
 */

export interface SkillFile {
  /** Path relative to the skill folder, with `/` separators. */
  rel: string;
  size: number;
  executable: boolean;
}

export interface SkillTree {
  files: SkillFile[];
  /** Entries left out (links, devices, ...), relative paths. */
  skipped: string[];
}

/** Bounds on one skill folder: a skill is instructions and small helpers, not a repository. */
export const SKILL_LIMITS = { maxFiles: 2000, maxBytes: 32 * 1024 * 1024, maxDepth: 16 };

const NOT_PART_OF_A_SKILL = new Set([".git", ".hg", ".svn"]);

/** Walk `dir` (sorted, so digests are stable), within SKILL_LIMITS. */
export function skillTree(dir: string): SkillTree {
  const files: SkillFile[] = [];
  const skipped: string[] = [];
  let bytes = 0;
  const tooBig = (what: string) =>
    new LobuError("skill_invalid", `${dir}: the skill folder is too large (${what})`, {
      hint: `A skill folder holds at most ${SKILL_LIMITS.maxFiles} files and ${SKILL_LIMITS.maxBytes / 1024 / 1024} MiB; install the folder of the skill itself (git: --path <subdir>).`,
    });
  const root = realpathSync(dir);
  const walk = (abs: string, depth: number) => {
    if (depth > SKILL_LIMITS.maxDepth) throw tooBig(`deeper than ${SKILL_LIMITS.maxDepth} levels`);
    for (const name of readdirSync(abs).sort()) {
      if (depth === 0 && NOT_PART_OF_A_SKILL.has(name)) continue;
      const path = join(abs, name);
      const rel = relative(root, path).split(sep).join("/");
      const st = lstatSync(path);
      if (st.isDirectory()) walk(path, depth + 1);
      else if (st.isFile()) {
        bytes += st.size;
        files.push({ rel, size: st.size, executable: (st.mode & 0o111) !== 0 });
        if (files.length > SKILL_LIMITS.maxFiles)
          throw tooBig(`more than ${SKILL_LIMITS.maxFiles} files`);
        if (bytes > SKILL_LIMITS.maxBytes)
          throw tooBig(`more than ${SKILL_LIMITS.maxBytes / 1024 / 1024} MiB`);
      } else skipped.push(rel);
    }
  };
  walk(root, 0);
  return { files, skipped };
}

/**
 * `sha256-<hex>` over every file's path, executable bit and contents: the same
 * folder gives the same digest wherever it is (timestamps and owners aside).
 */
export function skillDigest(dir: string, tree: SkillTree = skillTree(dir)): string {
  const hash = createHash("sha256");
  for (const f of tree.files) {
    const content = createHash("sha256")
      .update(readFileSync(join(dir, f.rel)))
      .digest("hex");
    hash.update(`${f.rel}\0${f.executable ? "x" : "-"}\0${content}\n`);
  }
  return `sha256-${hash.digest("hex")}`;
}

/**
 * Copy the tree's files from `from` to `to` (created; must not exist yet),
 * readable by everyone (sandboxes read them as their own uid) and executable
 * where the source was.
 */
export function copySkillTree(from: string, to: string, tree: SkillTree = skillTree(from)): void {
  const made = new Set<string>();
  const dirFor = (rel: string) => {
    const path = join(to, ...rel.split("/"));
    if (made.has(path)) return;
    if (rel) dirFor(rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "");
    mkdirSync(path, { recursive: true });
    // (Whatever the umask: the sandbox's uid must be able to walk in.)
    chmodSync(path, 0o755);
    made.add(path);
  };
  for (const f of tree.files) {
    dirFor(f.rel.includes("/") ? f.rel.slice(0, f.rel.lastIndexOf("/")) : "");
    const target = join(to, ...f.rel.split("/"));
    copyFileSync(join(from, ...f.rel.split("/")), target);
    chmodSync(target, f.executable ? 0o755 : 0o644);
  }
  dirFor("");
}
