import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isLobuError, LobuConfig, parseConfig } from "@lobu/core";
import { STARTER_SKILLS_DIR, starterSkillNames } from "@lobu/skills";
import { describe, expect, it } from "vitest";
import { checkConfigReferences } from "../../src/agents/references.ts";
import { ProviderRegistry } from "../../src/providers/registry.ts";
import { SkillCatalog } from "../../src/skills/catalog.ts";
import { skillDigest } from "../../src/skills/files.ts";
import { writeLock } from "../../src/skills/lock.ts";
import { checkNeeds } from "../../src/skills/needs.ts";
import { parseSkillMd } from "../../src/skills/skill-md.ts";
import { tempDirs, writeSkill } from "./fixtures.ts";

const temp = tempDirs();

/** A project folder with lobu.toml (`toml`) and skills written by `setup`. */
function project(toml: string, setup: (dir: string) => void = () => {}) {
  const dir = temp("lobu-project-");
  const path = join(dir, "lobu.toml");
  writeFileSync(path, toml);
  setup(dir);
  return { dir, path, config: parseConfig(toml, path) };
}

function thrown(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (isLobuError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("no error");
}

describe("the skill catalog", () => {
  it("loads the project's skills/<name>/SKILL.md with their files and needs", () => {
    const p = project("", (dir) =>
      writeSkill(join(dir, "skills", "weather"), "weather", {
        metadata: { "lobu.domains": "api.weather.example", "lobu.secrets": "WEATHER_KEY" },
        files: { "scripts/forecast.sh+x": "#!/bin/sh\necho sunny\n", "reference.md": "units" },
      }),
    );
    const catalog = new SkillCatalog(p.config, p.path);
    const skill = catalog.get("weather")!;
    expect(skill).toMatchObject({
      name: "weather",
      description: "The weather skill. Use it for weather things.",
      instructions: "# weather\n\nInstructions of weather.",
      files: true,
      origin: "project",
      domains: ["api.weather.example"],
      secrets: ["WEATHER_KEY"],
      packages: [],
      mcp: [],
      dir: join(p.dir, "skills", "weather"),
      where: `${join(p.dir, "skills", "weather", "SKILL.md")}: metadata.lobu`,
    });
    expect(skill.digest).toBe(skillDigest(skill.dir!));
    expect(catalog.pick(["weather", "nope", "weather"]).map((s) => s.name)).toEqual(["weather"]);
    // Without a project (no lobu.toml), only lobu.toml's skills exist.
    expect(new SkillCatalog(p.config).list()).toEqual([]);
  });

  it("keeps [skills.<id>]: inline instructions, a plain Markdown file, a SKILL.md or its folder", () => {
    const p = project(
      [
        "[skills.inline]",
        'description = "Inline"',
        'instructions = "Say hi."',
        "[skills.plain]",
        'path = "notes/plain.md"',
        "[skills.pdf]",
        'path = "vendor/pdf/SKILL.md"',
        'domains = ["extra.example.com"]',
        "[skills.csv]",
        'path = "vendor/csv"',
      ].join("\n"),
      (dir) => {
        mkdirSync(join(dir, "notes"));
        writeFileSync(
          join(dir, "notes", "plain.md"),
          "---\ndescription: From the file\n---\nPlain body.\n",
        );
        writeSkill(join(dir, "vendor", "pdf"), "pdf", {
          metadata: { "lobu.domains": "pdf.example.com" },
        });
        writeSkill(join(dir, "vendor", "csv"), "csv", { files: { "x.txt": "x" } });
      },
    );
    const catalog = new SkillCatalog(p.config, p.path);
    expect(catalog.get("inline")).toMatchObject({
      description: "Inline",
      instructions: "Say hi.",
      files: false,
      origin: "config",
      where: `${p.path}: skills.inline`,
    });
    expect(catalog.get("plain")).toMatchObject({
      description: "From the file",
      instructions: "Plain body.\n",
      files: false,
    });
    // A SKILL.md is a skill folder: its files come along, lobu.toml's needs are added.
    expect(catalog.get("pdf")).toMatchObject({
      files: true,
      origin: "config",
      dir: join(p.dir, "vendor", "pdf"),
      domains: ["pdf.example.com", "extra.example.com"],
    });
    expect(catalog.get("csv")).toMatchObject({ files: true, dir: join(p.dir, "vendor", "csv") });
  });

  it("a [skills.<id>] path at the project's own folder is one skill, not a conflict", () => {
    const p = project('[skills.notes]\npath = "skills/notes"\nsecrets = ["NOTES_TOKEN"]\n', (dir) =>
      writeSkill(join(dir, "skills", "notes"), "notes"),
    );
    const catalog = new SkillCatalog(p.config, p.path);
    expect(catalog.list().map((s) => [s.name, s.origin, s.secrets])).toEqual([
      ["notes", "config", ["NOTES_TOKEN"]],
    ]);
  });

  it("refuses two skills of one name, naming both, and a path whose skill has another name", () => {
    const p = project('[skills.notes]\ninstructions = "x"\n', (dir) =>
      writeSkill(join(dir, "skills", "notes"), "notes"),
    );
    expect(thrown(() => new SkillCatalog(p.config, p.path))).toEqual({
      code: "skill_conflict",
      message: `two skills are named "notes": ${join(p.dir, "skills", "notes", "SKILL.md")} and ${p.path}: skills.notes`,
    });
    const q = project('[skills.github]\npath = "vendor/gh/SKILL.md"\n', (dir) =>
      writeSkill(join(dir, "vendor", "gh"), "gh"),
    );
    expect(thrown(() => new SkillCatalog(q.config, q.path))).toEqual({
      code: "skill_invalid",
      message: `${q.path}: skills.github.path: ${join(q.dir, "vendor", "gh", "SKILL.md")} is the skill "gh"; name the section [skills.gh]`,
    });
  });

  it("names the SKILL.md and key of an invalid project skill", () => {
    const p = project("", (dir) => writeSkill(join(dir, "skills", "Weather"), "weather"));
    expect(thrown(() => new SkillCatalog(p.config, p.path))).toMatchObject({
      code: "skill_invalid",
      message: `${join(p.dir, "skills", "Weather", "SKILL.md")}: name: "weather" does not match its folder "Weather"; rename one of them (the Agent Skills spec requires they match)`,
    });
  });

  it("warns about folders that are not skills and leaves links out of a skill", () => {
    const p = project("", (dir) => {
      mkdirSync(join(dir, "skills", "drafts"), { recursive: true });
      writeFileSync(join(dir, "skills", "README.md"), "not a skill");
      writeSkill(join(dir, "skills", "linky"), "linky");
      symlinkSync("/etc/passwd", join(dir, "skills", "linky", "passwd"));
    });
    const catalog = new SkillCatalog(p.config, p.path);
    expect(catalog.list().map((s) => s.name)).toEqual(["linky"]);
    expect(catalog.warnings).toEqual([
      `${join(p.dir, "skills", "drafts")}: no SKILL.md in this folder, so it is not a skill (ignored)`,
      `${join(p.dir, "skills", "linky")}: left out of the skill (not regular files: links or devices): passwd`,
    ]);
  });

  it("knows installed skills from skills-lock.json, and notices one changed since", () => {
    const p = project("", (dir) => {
      writeSkill(join(dir, "skills", "tidy"), "tidy");
      writeSkill(join(dir, "skills", "edited"), "edited");
    });
    const entry = (name: string, digest: string) => ({
      source: { kind: "path" as const, path: `/src/${name}` },
      digest,
      installedAt: "2026-01-01T00:00:00.000Z",
    });
    writeLock(p.dir, {
      version: 1,
      skills: {
        tidy: entry("tidy", skillDigest(join(p.dir, "skills", "tidy"))),
        edited: entry("edited", "sha256-something-else"),
        gone: entry("gone", "sha256-x"),
      },
    });
    const catalog = new SkillCatalog(p.config, p.path);
    expect(catalog.get("tidy")).toMatchObject({
      origin: "installed",
      lock: { digest: expect.any(String) },
    });
    expect(catalog.warnings).toEqual([
      `${join(p.dir, "skills", "edited", "SKILL.md")}: changed since \`lobu skills add\` installed it (skills-lock.json has another digest); add it again to restore it, or remove its lock entry to make it the project's own`,
      'skills-lock.json names "gone", but skills/gone/ is missing: run `lobu skills add` with its source again, or `lobu skills remove gone`',
    ]);
  });

  it("ships valid starter skills: one about Lobu itself and one that uses an MCP server", () => {
    expect(starterSkillNames()).toEqual(expect.arrayContaining(["lobu", "docs-search"]));
    for (const name of starterSkillNames()) {
      const file = join(STARTER_SKILLS_DIR, name, "SKILL.md");
      const skill = parseSkillMd(readFileSync(file, "utf8"), { file, dirName: name });
      expect(skill.description.length).toBeGreaterThan(50);
      expect(skill.instructions.length).toBeGreaterThan(200);
    }
    const lobu = parseSkillMd(readFileSync(join(STARTER_SKILLS_DIR, "lobu", "SKILL.md"), "utf8"), {
      file: "lobu",
    });
    expect(lobu.instructions).toContain("request_capability");
    expect(lobu.instructions).toContain("ask_user");
    const docs = parseSkillMd(
      readFileSync(join(STARTER_SKILLS_DIR, "docs-search", "SKILL.md"), "utf8"),
      { file: "docs-search" },
    );
    expect(docs.needs.mcp).toEqual(["docs"]);
  });
});

describe("a skill's needs at startup", () => {
  const providers = new ProviderRegistry(LobuConfig.parse({}), {});

  it("a skill folder naming an undeclared MCP server loads, with a warning saying what to add", () => {
    const p = project('[agents.default]\nskills = ["docs-search"]\n', (dir) =>
      writeSkill(join(dir, "skills", "docs-search"), "docs-search", {
        metadata: { "lobu.mcp": "docs" },
      }),
    );
    const catalog = new SkillCatalog(p.config, p.path);
    const warnings = checkConfigReferences(p.config, providers, catalog, p.path);
    expect(warnings).toEqual([
      `${join(p.dir, "skills", "docs-search", "SKILL.md")}: metadata.lobu.mcp: MCP server "docs" is not declared; declare it in lobu.toml: [mcp.docs] url = "https://…" (the server's streamable-HTTP endpoint)`,
    ]);
    const declared = project(
      '[agents.default]\nskills = ["docs-search"]\n[mcp.docs]\nurl = "https://docs.example.com/mcp"\n',
      (dir) =>
        writeSkill(join(dir, "skills", "docs-search"), "docs-search", {
          metadata: { "lobu.mcp": "docs" },
        }),
    );
    expect(
      checkConfigReferences(
        declared.config,
        providers,
        new SkillCatalog(declared.config, declared.path),
        declared.path,
      ),
    ).toEqual([]);
  });

  it("a skill folder's domains pass the public-suffix check, refused under its file and key", () => {
    const p = project("", (dir) =>
      writeSkill(join(dir, "skills", "pages"), "pages", {
        metadata: { "lobu.domains": "docs.example.com *.github.io" },
      }),
    );
    const catalog = new SkillCatalog(p.config, p.path);
    const error = thrown(() => checkConfigReferences(p.config, providers, catalog, p.path));
    expect(error.code).toBe("config_invalid");
    expect(error.message).toBe(
      `${join(p.dir, "skills", "pages", "SKILL.md")}: metadata.lobu.domains: "*.github.io" would allow every site under github.io, a public suffix where anyone can register a name; name the hosts you mean, or list "*.github.io" in [network] allow_public_suffixes to allow it anyway`,
    );
    const optedIn = project('[network]\nallow_public_suffixes = ["*.github.io"]\n', (dir) =>
      writeSkill(join(dir, "skills", "pages"), "pages", {
        metadata: { "lobu.domains": "*.github.io" },
      }),
    );
    expect(
      checkConfigReferences(
        optedIn.config,
        providers,
        new SkillCatalog(optedIn.config, optedIn.path),
        optedIn.path,
      ),
    ).toEqual([
      `${join(optedIn.dir, "skills", "pages", "SKILL.md")}: metadata.lobu.domains: "*.github.io" would allow every site under github.io, a public suffix where anyone can register a name (opted in by [network] allow_public_suffixes)`,
    ]);
  });

  it("a skill's package is checked against [packages]: off, denied or not allowed is said, with the fix", () => {
    const skill = { name: "pdf", mcp: [], packages: ["poppler_utils"], domains: [], secrets: [] };
    const off = parseConfig("", "/p/lobu.toml");
    expect(checkNeeds(skill, off)).toEqual([
      {
        kind: "packages",
        value: "poppler_utils",
        ok: false,
        problem: "packages are off on this gateway, so poppler_utils is not provided",
        fix: "[packages] enabled = true in lobu.toml (docs/packages.md; needs Nix on the gateway host)",
      },
    ]);
    const denied = parseConfig('[packages]\nenabled = true\ndeny = ["poppler*"]\n', "/p/lobu.toml");
    expect(checkNeeds(skill, denied)[0]).toMatchObject({
      ok: false,
      problem: 'poppler_utils is not provided on this gateway (packages.deny has "poppler*")',
    });
    const allowed = parseConfig("[packages]\nenabled = true\n", "/p/lobu.toml");
    expect(checkNeeds(skill, allowed)[0]).toMatchObject({ ok: true, note: "provided through Nix" });
  });
});
