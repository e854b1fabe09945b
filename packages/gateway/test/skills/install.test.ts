import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isLobuError, parseConfig } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { SkillCatalog } from "../../src/skills/catalog.ts";
import { skillDigest } from "../../src/skills/files.ts";
import { addSkill, removeSkill, restoreSkills } from "../../src/skills/install.ts";
import { readLock } from "../../src/skills/lock.ts";
import { classifySource } from "../../src/skills/sources.ts";
import { tempDirs, writeSkill } from "./fixtures.ts";

/**
 * `lobu skills add` from every kind of source, without the network: a folder,
 * a local git repository (`git init` here) and a local npm tarball (`npm pack`
 * of a fixture package), then list (the catalog), remove and restore.
 */

const temp = tempDirs();

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", ...args], {
    cwd,
    encoding: "utf8",
  }).trim();
}

/** A git repository holding skills under skills/, committed on `main`. */
function gitRepo(): { dir: string; url: string; commit: () => string } {
  const dir = temp("lobu-skill-repo-");
  git(dir, "init", "--quiet", "--initial-branch=main");
  writeSkill(join(dir, "skills", "weather"), "weather", {
    metadata: { "lobu.domains": "api.weather.example" },
    files: { "scripts/forecast.sh+x": "#!/bin/sh\necho sunny\n" },
  });
  writeSkill(join(dir, "skills", "tides"), "tides");
  writeFileSync(join(dir, "README.md"), "a skills repo\n");
  git(dir, "add", "-A");
  git(dir, "commit", "--quiet", "-m", "skills");
  return { dir, url: `file://${dir}`, commit: () => git(dir, "rev-parse", "HEAD") };
}

function project(toml = "") {
  const dir = temp("lobu-project-");
  const path = join(dir, "lobu.toml");
  writeFileSync(path, toml);
  return { dir, path, config: parseConfig(toml, path) };
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isLobuError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("no error");
}

describe("lobu skills add", () => {
  it("reads a source as a starter skill, a folder, a git URL or an npm package", () => {
    const cwd = temp();
    expect(classifySource("lobu", cwd)).toBe("starter");
    expect(classifySource("./lobu", cwd)).toBe("path");
    expect(classifySource("/abs/skill", cwd)).toBe("path");
    expect(classifySource("https://github.com/org/skills", cwd)).toBe("git");
    expect(classifySource("https://host.example/org/skills.git#v1:pdf", cwd)).toBe("git");
    expect(classifySource("git+file:///srv/skills#main:pdf", cwd)).toBe("git");
    expect(classifySource("git@github.com:org/skills.git", cwd)).toBe("git");
    expect(classifySource("./pkg-1.0.0.tgz", cwd)).toBe("npm");
    // A file:// URL is a (local, often bare) repository, as git names one; a tarball stays npm's.
    expect(classifySource("file:///srv/skills", cwd)).toBe("git");
    expect(classifySource("file:///srv/skills#main:pdf", cwd)).toBe("git");
    expect(classifySource("file:///srv/pkg-1.0.0.tgz", cwd)).toBe("npm");
    expect(classifySource("@org/pdf-skill@^1", cwd)).toBe("npm");
  });

  it("installs a folder, records it, lists it and removes it", async () => {
    const p = project();
    const source = writeSkill(join(temp(), "notes"), "notes", {
      files: { "templates/meeting.md": "# Meeting\n", "run.sh+x": "#!/bin/sh\n" },
    });
    const added = await addSkill({ spec: source, projectDir: p.dir, config: p.config });
    expect(added).toMatchObject({ name: "notes", status: "installed", skipped: [] });
    const dir = join(p.dir, "skills", "notes");
    expect(readFileSync(join(dir, "templates", "meeting.md"), "utf8")).toBe("# Meeting\n");
    expect(statSync(join(dir, "run.sh")).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, "SKILL.md")).mode & 0o777).toBe(0o644);
    expect(readLock(p.dir).skills.notes).toEqual({
      source: { kind: "path", path: source },
      digest: skillDigest(source),
      installedAt: expect.any(String),
    });

    const listed = new SkillCatalog(p.config, p.path).get("notes");
    expect(listed).toMatchObject({ origin: "installed", dir, digest: skillDigest(source) });

    // The same again changes nothing; a changed source needs --force.
    expect((await addSkill({ spec: source, projectDir: p.dir })).status).toBe("unchanged");
    writeFileSync(join(source, "templates", "meeting.md"), "# Meeting v2\n");
    expect(await rejection(addSkill({ spec: source, projectDir: p.dir }))).toEqual({
      code: "skill_conflict",
      message: `"notes" is installed already (path ${source})`,
    });
    expect((await addSkill({ spec: source, projectDir: p.dir, force: true })).status).toBe(
      "updated",
    );
    expect(readFileSync(join(dir, "templates", "meeting.md"), "utf8")).toBe("# Meeting v2\n");

    expect(removeSkill({ projectDir: p.dir, name: "notes", config: p.config })).toEqual({
      name: "notes",
      removedFolder: true,
      hadLockEntry: true,
      stillUsedBy: [],
    });
    expect(existsSync(dir)).toBe(false);
    expect(readLock(p.dir).skills).toEqual({});
    expect(new SkillCatalog(p.config, p.path).list()).toEqual([]);
    expect(() => removeSkill({ projectDir: p.dir, name: "notes" })).toThrow(
      /there is no skill "notes"/,
    );
  });

  it("clones a local git repository, takes the skill from a subfolder and pins the commit", async () => {
    const repo = gitRepo();
    const p = project();
    const added = await addSkill({
      spec: `git+${repo.url}#main:skills/weather`,
      projectDir: p.dir,
      config: p.config,
    });
    expect(added).toMatchObject({ name: "weather", status: "installed" });
    expect(readLock(p.dir).skills.weather?.source).toEqual({
      kind: "git",
      url: repo.url,
      ref: "main",
      subdir: "skills/weather",
      commit: repo.commit(),
    });
    const installed = join(p.dir, "skills", "weather");
    expect(readFileSync(join(installed, "scripts", "forecast.sh"), "utf8")).toContain("sunny");
    // Only the skill's folder is copied: nothing else of the repository, no .git.
    expect(existsSync(join(installed, "README.md"))).toBe(false);
    expect(existsSync(join(installed, ".git"))).toBe(false);
    expect(new SkillCatalog(p.config, p.path).get("weather")).toMatchObject({
      origin: "installed",
      domains: ["api.weather.example"],
    });

    // A repository with several skills needs --path, and says which.
    expect(await rejection(addSkill({ spec: repo.url, kind: "git", projectDir: p.dir }))).toEqual({
      code: "skill_invalid",
      message: expect.stringMatching(/holds 2 skills: skills\/tides, skills\/weather$/),
    });
    // A commit, by --ref and --path.
    const first = repo.commit();
    writeSkill(join(repo.dir, "skills", "tides"), "tides", { description: "Tides, version two." });
    git(repo.dir, "commit", "--quiet", "-am", "v2");
    const pinned = await addSkill({
      spec: repo.url,
      kind: "git",
      ref: first,
      path: "skills/tides",
      projectDir: p.dir,
    });
    expect(pinned.manifest.description).toBe("The tides skill. Use it for tides things.");
    expect(readLock(p.dir).skills.tides?.source).toMatchObject({ commit: first, ref: first });

    expect(
      await rejection(
        addSkill({ spec: repo.url, kind: "git", ref: "no-such-branch", projectDir: p.dir }),
      ),
    ).toMatchObject({
      code: "skill_fetch_failed",
      message: expect.stringContaining(`cannot clone ${repo.url} at no-such-branch`),
    });
    expect(
      await rejection(
        addSkill({ spec: repo.url, kind: "git", path: "../../etc", projectDir: p.dir }),
      ),
    ).toMatchObject({
      code: "skill_invalid",
      message: expect.stringContaining("leads out of the source"),
    });
  });

  it("unpacks a local npm tarball (npm pack of a fixture package)", async () => {
    const pkg = writeSkill(temp("lobu-skill-pkg-"), "pdf-tools", {
      metadata: { "lobu.packages": "poppler_utils" },
      files: { "scripts/extract.py": "print('text')\n" },
    });
    writeFileSync(
      join(pkg, "package.json"),
      JSON.stringify({
        name: "@fixture/pdf-tools-skill",
        version: "1.2.3",
        files: ["SKILL.md", "scripts"],
      }),
    );
    const packs = temp("lobu-skill-packs-");
    const [packed] = JSON.parse(
      execFileSync("npm", ["pack", pkg, "--json", "--pack-destination", packs], {
        encoding: "utf8",
      }),
    ) as { filename: string }[];
    const tarball = join(packs, packed!.filename);

    const p = project();
    const added = await addSkill({ spec: tarball, projectDir: p.dir, config: p.config });
    expect(added).toMatchObject({ name: "pdf-tools", status: "installed" });
    expect(readLock(p.dir).skills["pdf-tools"]?.source).toEqual({
      kind: "npm",
      spec: tarball,
      package: "@fixture/pdf-tools-skill",
      version: "1.2.3",
      integrity: expect.stringMatching(/^sha512-/),
    });
    const dir = join(p.dir, "skills", "pdf-tools");
    expect(readFileSync(join(dir, "scripts", "extract.py"), "utf8")).toBe("print('text')\n");
    // The package's own manifest came along as one of its files.
    expect(existsSync(join(dir, "package.json"))).toBe(true);
    expect(new SkillCatalog(p.config, p.path).get("pdf-tools")?.packages).toEqual([
      "poppler_utils",
    ]);
    // A package npm cannot fetch says why (npm's own summary, not where its log went).
    const missing = join(packs, "no-such-skill-1.0.0.tgz");
    const failed = await rejection(addSkill({ spec: missing, projectDir: p.dir }));
    expect(failed.code).toBe("skill_fetch_failed");
    expect(failed.message).toContain("no such file or directory");
    expect(failed.message).not.toContain("complete log");
  });

  it("clones a bare repository named by a file:// URL, as an outsider types it", async () => {
    const repo = gitRepo();
    const bare = join(temp("lobu-skill-bare-"), "skills");
    execFileSync("git", ["clone", "--quiet", "--bare", repo.dir, bare]);
    const p = project();
    const added = await addSkill({
      spec: `file://${bare}#main:skills/tides`,
      projectDir: p.dir,
      config: p.config,
    });
    expect(added).toMatchObject({ name: "tides", status: "installed" });
    expect(readLock(p.dir).skills.tides?.source).toMatchObject({
      kind: "git",
      commit: repo.commit(),
    });
  });

  it("installs a starter skill by name", async () => {
    const p = project();
    const added = await addSkill({ spec: "lobu", projectDir: p.dir });
    expect(added.entry.source).toEqual({ kind: "starter", name: "lobu", version: "0.1.0" });
    expect(existsSync(join(p.dir, "skills", "lobu", "scripts", "check-host.sh"))).toBe(true);
  });

  it("keeps names unique: lobu.toml's and the project's own skills are never replaced", async () => {
    const p = project('[skills.notes]\ninstructions = "x"\n');
    const source = writeSkill(join(temp(), "notes"), "notes");
    expect(
      await rejection(addSkill({ spec: source, projectDir: p.dir, config: p.config })),
    ).toEqual({
      code: "skill_conflict",
      message: 'lobu.toml declares a skill "notes" ([skills.notes])',
    });
    const q = project();
    writeSkill(join(q.dir, "skills", "notes"), "notes", { description: "Our own." });
    expect(await rejection(addSkill({ spec: source, projectDir: q.dir, force: true }))).toEqual({
      code: "skill_conflict",
      message: "skills/notes/ exists and is the project's own skill",
    });
    expect(readFileSync(join(q.dir, "skills", "notes", "SKILL.md"), "utf8")).toContain("Our own.");
    // An invalid source is refused before anything is written, naming the file.
    const bad = join(temp(), "bad");
    writeSkill(bad, "Bad_Name");
    expect(await rejection(addSkill({ spec: bad, projectDir: q.dir }))).toMatchObject({
      code: "skill_invalid",
      message: expect.stringMatching(/^path .*: SKILL.md: name: /),
    });
    expect(existsSync(join(q.dir, "skills-lock.json"))).toBe(false);
  });

  it("restores skills whose folder is missing from the lock, pinned and checked by digest", async () => {
    const repo = gitRepo();
    const p = project();
    await addSkill({ spec: repo.url, kind: "git", path: "skills/weather", projectDir: p.dir });
    const recorded = readLock(p.dir).skills.weather!;
    // The repository moves on; the restore still installs the recorded commit.
    writeSkill(join(repo.dir, "skills", "weather"), "weather", { description: "Changed." });
    git(repo.dir, "commit", "--quiet", "-am", "changed");
    rmSync(join(p.dir, "skills", "weather"), { recursive: true });

    expect(await restoreSkills({ projectDir: p.dir })).toEqual({
      restored: ["weather"],
      present: [],
    });
    expect(skillDigest(join(p.dir, "skills", "weather"))).toBe(recorded.digest);
    expect(await restoreSkills({ projectDir: p.dir })).toEqual({
      restored: [],
      present: ["weather"],
    });
  });
});
