import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { isAbsolute, join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { LobuError } from "@lobu/core";
import { STARTER_SKILLS_VERSION, starterSkillDir } from "@lobu/skills";
import { extract } from "tar";
import { SKILL_LIMITS } from "./files.ts";
import type { SkillSourceRecord } from "./lock.ts";

const run = promisify(execFile);

/**
 * Where `lobu skills add` gets a skill from: a folder on this machine, a git
 * repository (cloned, optionally at a ref and from a subfolder), an npm
 * package or tarball (`npm pack`, then unpacked), or a starter skill shipped
 * with Lobu, by name. Each is fetched into a temporary folder; the installer
 * then checks it and copies the skill folder into the project.
 */
export type SourceKind = SkillSourceRecord["kind"];

export interface SourceRequest {
  /** What the person typed: a path, a git URL, an npm spec, or a starter skill's name. */
  spec: string;
  /** Force how `spec` is read (default: guessed, see classifySource). */
  kind?: SourceKind;
  /** Git: branch, tag or commit (also `url#ref`). */
  ref?: string;
  /** Folder of the skill inside the repository or package (also `url#ref:path`). */
  path?: string;
  /** Resolves relative paths (default: the current directory). */
  cwd?: string;
  /** The project, so a path inside it is recorded relative to it. */
  projectDir?: string;
}

export interface Fetched {
  /** Folder holding what was fetched (a repository, a package, a folder). */
  root: string;
  /** The folder of the skill in it (`root` or a subfolder). */
  subdir?: string;
  record: SkillSourceRecord;
  /** Removes the temporary copy (nothing for a local folder). */
  cleanup(): void;
}

const GIT_HOSTS = /^https?:\/\/(www\.)?(github\.com|gitlab\.com|bitbucket\.org|codeberg\.org)\//;

/** How a spec is read when `--git`, `--npm` or `--path` does not say. */
export function classifySource(spec: string, cwd = process.cwd()): SourceKind {
  if (/^git\+|^git:\/\/|^ssh:\/\/|^[\w.-]+@[\w.-]+:/.test(spec)) return "git";
  const bare = spec.split("#")[0]!;
  if (/\.git\/?$/.test(bare) || GIT_HOSTS.test(bare)) return "git";
  if (/\.(tgz|tar\.gz)$/.test(bare)) return "npm";
  // git's own spelling of a local repository (a bare one often has no .git suffix).
  if (bare.startsWith("file://")) return "git";
  if (/^(\.{1,2}|~)?\//.test(spec)) return "path";
  // A bare name: a starter skill shipped with Lobu, a folder here, else an npm package.
  if (starterSkillDir(spec)) return "starter";
  if (existsSync(resolve(cwd, spec))) return "path";
  return "npm";
}

function fetchFailed(message: string, hint: string): LobuError {
  return new LobuError("skill_fetch_failed", message, { hint });
}

function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Why a command failed, for messages: `npm --json`'s error summary (its
 * stderr ends with where its log went, which says nothing), else stderr's
 * last meaningful line.
 */
function reason(err: unknown): string {
  const e = err as { stdout?: string; stderr?: string; message?: string };
  try {
    const summary = (JSON.parse(e.stdout ?? "") as { error?: { summary?: unknown } }).error
      ?.summary;
    if (typeof summary === "string" && summary) return summary.split("\n")[0]!;
  } catch {
    // Not npm's JSON: read stderr.
  }
  const lines = (e.stderr || e.message || String(err))
    .trim()
    .split("\n")
    .filter((line) => line.trim() && !/A complete log of this run/.test(line));
  return lines.at(-1)?.replace(/^(fatal|error|npm error):\s*/i, "") ?? "failed";
}

export async function fetchSource(req: SourceRequest): Promise<Fetched> {
  const cwd = req.cwd ?? process.cwd();
  const kind = req.kind ?? classifySource(req.spec, cwd);
  switch (kind) {
    case "path":
      return fromPath(req, cwd);
    case "starter":
      return fromStarter(req);
    case "git":
      return fromGit(req);
    case "npm":
      return fromNpm(req, cwd);
  }
}

function fromPath(req: SourceRequest, cwd: string): Fetched {
  const spec = req.spec.startsWith("~/") ? join(homedir(), req.spec.slice(2)) : req.spec;
  const root = resolve(cwd, spec);
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw fetchFailed(`${root}: no such folder`, "Name a skill folder (one with a SKILL.md).");
  const inProject = req.projectDir && !relative(req.projectDir, root).startsWith("..");
  const path = inProject ? relative(req.projectDir!, root) || "." : root;
  return {
    root,
    ...(req.path ? { subdir: req.path } : {}),
    record: { kind: "path", path: req.path ? join(path, req.path) : path },
    cleanup: () => {},
  };
}

function fromStarter(req: SourceRequest): Fetched {
  const dir = starterSkillDir(req.spec);
  if (!dir)
    throw fetchFailed(
      `there is no starter skill "${req.spec}"`,
      "`lobu skills add --help` lists them.",
    );
  return {
    root: dir,
    record: { kind: "starter", name: req.spec, version: STARTER_SKILLS_VERSION },
    cleanup: () => {},
  };
}

/** `url#ref:subdir`, `url#ref`, `url#:subdir`: the fragment npm and others use for git sources. */
export function splitGitSpec(spec: string): { url: string; ref?: string; subdir?: string } {
  const hash = spec.indexOf("#");
  const url = (hash === -1 ? spec : spec.slice(0, hash)).replace(/^git\+/, "");
  if (hash === -1) return { url };
  const fragment = spec.slice(hash + 1);
  const colon = fragment.indexOf(":");
  const ref = colon === -1 ? fragment : fragment.slice(0, colon);
  const subdir = colon === -1 ? undefined : fragment.slice(colon + 1);
  return { url, ...(ref ? { ref } : {}), ...(subdir ? { subdir } : {}) };
}

async function git(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run("git", args, {
    cwd,
    // Never prompt for credentials: a private repository needs them configured beforehand.
    env: { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "" },
    maxBuffer: 4 * 1024 * 1024,
  });
  return stdout.trim();
}

async function fromGit(req: SourceRequest): Promise<Fetched> {
  const parsed = splitGitSpec(req.spec);
  const ref = req.ref ?? parsed.ref;
  const subdir = req.path ?? parsed.subdir;
  if (parsed.url.startsWith("-") || (ref ?? "").startsWith("-"))
    throw fetchFailed(`not a git URL: ${parsed.url}`, "Give an https://, ssh:// or file:// URL.");
  const tmp = tempDir("lobu-skill-git-");
  const repo = join(tmp.dir, "repo");
  try {
    try {
      await git([
        "clone",
        "--quiet",
        "--depth",
        "1",
        ...(ref ? ["--branch", ref] : []),
        "--",
        parsed.url,
        repo,
      ]);
    } catch (err) {
      // A commit cannot be cloned by name: clone everything, then check it out.
      if (!ref || !/^[0-9a-f]{7,64}$/i.test(ref)) throw err;
      rmSync(repo, { recursive: true, force: true });
      await git(["clone", "--quiet", "--no-checkout", "--", parsed.url, repo]);
      await git(["-c", "advice.detachedHead=false", "checkout", "--quiet", ref, "--"], repo);
    }
    const commit = await git(["rev-parse", "HEAD"], repo);
    return {
      root: repo,
      ...(subdir ? { subdir } : {}),
      record: {
        kind: "git",
        url: parsed.url,
        ...(ref ? { ref } : {}),
        ...(subdir ? { subdir } : {}),
        commit,
      },
      cleanup: tmp.cleanup,
    };
  } catch (err) {
    tmp.cleanup();
    if (err instanceof LobuError) throw err;
    throw fetchFailed(
      `cannot clone ${parsed.url}${ref ? ` at ${ref}` : ""}: ${reason(err)}`,
      "Check the URL and ref (a branch, tag or commit); private repositories need git credentials configured on this machine.",
    );
  }
}

interface PackResult {
  name: string;
  version: string;
  filename: string;
  integrity?: string;
}

async function fromNpm(req: SourceRequest, cwd: string): Promise<Fetched> {
  const tmp = tempDir("lobu-skill-npm-");
  // A local tarball is read from where it is, not from wherever npm runs.
  const spec =
    /\.(tgz|tar\.gz)$/.test(req.spec) && !/^[a-z+]+:\/\//.test(req.spec) && !isAbsolute(req.spec)
      ? resolve(cwd, req.spec)
      : req.spec.replace(/^npm:/, "");
  try {
    let packed: PackResult | undefined;
    try {
      const { stdout } = await run(
        "npm",
        ["pack", spec, "--json", "--ignore-scripts", "--pack-destination", tmp.dir],
        { cwd: tmp.dir, maxBuffer: 16 * 1024 * 1024 },
      );
      [packed] = JSON.parse(stdout) as PackResult[];
      if (!packed) throw new Error("npm pack printed nothing");
    } catch (err) {
      throw fetchFailed(
        `cannot fetch the npm package ${req.spec}: ${reason(err)}`,
        "Check the package name and version (npm pack must be able to fetch it here), or give a path or git URL.",
      );
    }
    if (!packed) throw fetchFailed(`npm pack ${req.spec} printed nothing`, "Try again.");
    const root = join(tmp.dir, "package");
    mkdirSync(root);
    await unpack(join(tmp.dir, packed.filename), root);
    return {
      root,
      ...(req.path ? { subdir: req.path } : {}),
      record: {
        kind: "npm",
        spec: req.spec,
        package: packed.name,
        version: packed.version,
        ...(packed.integrity ? { integrity: packed.integrity } : {}),
        ...(req.path ? { subdir: req.path } : {}),
      },
      cleanup: tmp.cleanup,
    };
  } catch (err) {
    tmp.cleanup();
    throw err;
  }
}

/**
 * Unpack an npm tarball (its top folder stripped): files and folders only, no
 * links, no paths out of `to`, within the skill size limits.
 */
async function unpack(file: string, to: string): Promise<void> {
  let files = 0;
  let bytes = 0;
  let tooBig = false;
  await extract({
    file,
    cwd: to,
    strip: 1,
    filter: (_path, entry) => {
      const type = "type" in entry ? entry.type : undefined;
      if (type !== "File" && type !== "Directory") return false;
      files += 1;
      bytes += "size" in entry && typeof entry.size === "number" ? entry.size : 0;
      if (files > SKILL_LIMITS.maxFiles || bytes > SKILL_LIMITS.maxBytes) tooBig = true;
      return !tooBig;
    },
  });
  if (tooBig)
    throw new LobuError("skill_invalid", `${file}: the package is larger than a skill may be`, {
      hint: `A skill holds at most ${SKILL_LIMITS.maxFiles} files and ${SKILL_LIMITS.maxBytes / 1024 / 1024} MiB.`,
    });
}
