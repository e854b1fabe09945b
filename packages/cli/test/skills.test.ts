import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "@lobu/core";
import { LOBU_BIN } from "@lobu/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { skillsCheck } from "../src/commands/doctor.ts";

/** `lobu skills ...` as a person runs it, in a project folder. */
function lobu(args: string[], cwd: string) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [LOBU_BIN, ...args], {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function projectDir(toml: string): string {
  const dir = mkdtempSync(join(tmpdir(), "lobu-cli-skills-"));
  made.push(dir);
  writeFileSync(join(dir, "lobu.toml"), toml);
  return dir;
}

interface Listed {
  skills: {
    name: string;
    origin: string;
    source?: { kind: string };
    usedBy: string[];
    needs: { kind: string; value: string; ok: boolean; problem?: string; fix?: string }[];
  }[];
  warnings: string[];
}

describe("lobu skills", () => {
  it("explains the SKILL.md format, the sources and the lock file in --help", async () => {
    const dir = projectDir("");
    const help = await lobu(["skills", "--help"], dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/add \[options\] <source>/);
    expect(help.stdout).toContain("lobu.mcp: docs");
    expect(help.stdout).toContain("skills-lock.json");
    const add = await lobu(["skills", "add", "--help"], dir);
    expect(add.stdout).toContain("--path <folder>");
    expect(add.stdout).toContain("git+https://host/repo#v1.2:skills/pdf");
    expect(add.stdout).toContain("lobu skills add lobu");
    const top = await lobu(["--help"], dir);
    expect(top.stdout).toMatch(/^ {2}skills add\|list\|remove\|restore /m);
  });

  it("lobu init offers the starter skills in the lobu.toml it writes", async () => {
    const dir = projectDir("");
    expect((await lobu(["init", dir, "--force"], dir)).code).toBe(0);
    const toml = readFileSync(join(dir, "lobu.toml"), "utf8");
    expect(toml).toContain("#   npx lobu skills add lobu ");
    expect(toml).toContain("#   npx lobu skills add docs-search ");
    expect(toml).toContain("# [mcp.docs]");
  });

  it("adds the starter skills by name, lists them with their needs checked, and removes one", async () => {
    const dir = projectDir('[agents.default]\nskills = ["lobu", "docs-search"]\n');
    const lobuSkill = await lobu(["skills", "add", "lobu"], dir);
    expect(lobuSkill.code).toBe(0);
    expect(lobuSkill.stdout).toMatch(/^installed lobu in skills\/lobu \(starter skill lobu/);
    expect(existsSync(join(dir, "skills", "lobu", "SKILL.md"))).toBe(true);

    // A skill that names an MCP server nobody declared says so, with what to add.
    const docs = await lobu(["skills", "add", "docs-search"], dir);
    expect(docs.code).toBe(0);
    expect(docs.stdout).toContain('✗ mcp docs: MCP server "docs" is not declared');
    expect(docs.stdout).toContain('fix: declare it in lobu.toml: [mcp.docs] url = "https://…"');

    const listed = JSON.parse((await lobu(["skills", "list", "--json"], dir)).stdout) as Listed;
    expect(listed.skills.map((s) => [s.name, s.origin, s.source?.kind, s.usedBy])).toEqual([
      ["docs-search", "installed", "starter", ["default"]],
      ["lobu", "installed", "starter", ["default"]],
    ]);
    expect(listed.skills[0]!.needs).toEqual([
      {
        kind: "mcp",
        value: "docs",
        ok: false,
        problem: 'MCP server "docs" is not declared',
        fix: 'declare it in lobu.toml: [mcp.docs] url = "https://…" (the server\'s streamable-HTTP endpoint)',
      },
    ]);
    const text = await lobu(["skills", "list"], dir);
    expect(text.stdout).toContain("docs-search  skills/docs-search ← starter skill docs-search");
    expect(text.stdout).toContain("given to agents: default");

    // Declared: satisfied.
    writeFileSync(
      join(dir, "lobu.toml"),
      '[agents.default]\nskills = ["lobu", "docs-search"]\n[mcp.docs]\nurl = "https://docs.example.com/mcp"\n',
    );
    const declared = JSON.parse((await lobu(["skills", "list", "--json"], dir)).stdout) as Listed;
    expect(declared.skills[0]!.needs).toEqual([{ kind: "mcp", value: "docs", ok: true }]);

    const removed = await lobu(["skills", "remove", "docs-search"], dir);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain(
      "removed docs-search (skills/docs-search/) and its skills-lock.json entry",
    );
    expect(removed.stdout).toContain(
      'lobu.toml still gives it to agents.default: take "docs-search" out of their skills',
    );
    const lock = JSON.parse(readFileSync(join(dir, "skills-lock.json"), "utf8")) as {
      skills: Record<string, unknown>;
    };
    expect(Object.keys(lock.skills)).toEqual(["lobu"]);
  });

  it("adds a local folder and fails clearly on a bad source", async () => {
    const dir = projectDir("");
    const elsewhere = mkdtempSync(join(tmpdir(), "lobu-cli-skill-src-"));
    made.push(elsewhere);
    const source = join(elsewhere, "hello");
    mkdirSync(source);
    writeFileSync(
      join(source, "SKILL.md"),
      "---\nname: hello\ndescription: Say hello. Use when greeting.\nmetadata:\n  lobu.secrets: HELLO_TOKEN\n---\nSay hello.\n",
    );
    const added = await lobu(["skills", "add", source], dir);
    expect(added.code).toBe(0);
    expect(added.stdout).toContain("✗ secret HELLO_TOKEN: no agent binds HELLO_TOKEN");
    const missing = await lobu(["skills", "add", "./nope"], dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`lobu: ${join(dir, "nope")}: no such folder`);
    const twice = await lobu(["skills", "remove", "nothing-here"], dir);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('there is no skill "nothing-here"');
  });
});

describe("lobu doctor: skills", () => {
  it("warns about an undeclared MCP server and refuses a public-suffix domain, saying what to add", () => {
    const dir = projectDir("");
    mkdirSync(join(dir, "skills", "docs-search"), { recursive: true });
    writeFileSync(
      join(dir, "skills", "docs-search", "SKILL.md"),
      '---\nname: docs-search\ndescription: Search docs.\nmetadata:\n  lobu.mcp: docs\n  lobu.domains: "*.github.io"\n---\nSearch.\n',
    );
    const path = join(dir, "lobu.toml");
    const checks = skillsCheck(parseConfig("", path), path);
    expect(checks.map((c) => [c.level, c.title])).toEqual([
      ["ok", "skills: docs-search"],
      ["warn", 'skill docs-search: MCP server "docs" is not declared'],
      [
        "fail",
        'skill docs-search: "*.github.io" would allow every site under github.io, a public suffix where anyone can register a name; the gateway refuses to start with it',
      ],
    ]);
    expect(checks[1]!.detail).toContain(
      'fix: declare it in lobu.toml: [mcp.docs] url = "https://…"',
    );
    // A skill folder that cannot be read is a problem with the file and key named.
    writeFileSync(join(dir, "skills", "docs-search", "SKILL.md"), "---\nname: Docs\n---\n");
    const broken = skillsCheck(parseConfig("", path), path);
    expect(broken[0]).toMatchObject({ level: "fail", title: "skills cannot be loaded" });
    expect(broken[0]!.detail).toContain(
      `${join(dir, "skills", "docs-search", "SKILL.md")}: name: `,
    );
  });
});
