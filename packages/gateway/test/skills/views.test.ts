import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "@lobu/core";
import { describe, expect, it } from "vitest";
import { SkillCatalog } from "../../src/skills/catalog.ts";
import { SkillViews } from "../../src/skills/views.ts";
import { tempDirs, writeSkill } from "./fixtures.ts";

const temp = tempDirs();

/** A catalog of a project with skills `alpha` (with files) and `beta`, plus an inline one. */
function catalogWith(dir: string): SkillCatalog {
  writeSkill(join(dir, "skills", "alpha"), "alpha", { files: { "ref/a.md": "A1" } });
  writeSkill(join(dir, "skills", "beta"), "beta");
  const toml = '[skills.inline]\ninstructions = "no files"\n';
  writeFileSync(join(dir, "lobu.toml"), toml);
  return new SkillCatalog(parseConfig(toml), join(dir, "lobu.toml"));
}

describe("a sandbox's skill files", () => {
  it("holds exactly the installed skills' folders, world-readable, and follows changes", async () => {
    const project = temp();
    const views = new SkillViews(join(temp(), "skill-views"));
    let catalog = catalogWith(project);
    const dir = views.ensure("sbx-1");

    await views.sync("sbx-1", catalog.pick(["alpha", "inline"]));
    expect(readdirSync(dir)).toEqual(["alpha"]);
    expect(readFileSync(join(dir, "alpha", "ref", "a.md"), "utf8")).toBe("A1");
    expect(statSync(dir).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, "alpha", "ref")).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, "alpha", "ref", "a.md")).mode & 0o777).toBe(0o644);

    // A skill granted mid-conversation joins; one no longer installed leaves.
    await views.sync("sbx-1", catalog.pick(["alpha", "beta"]));
    expect(readdirSync(dir).sort()).toEqual(["alpha", "beta"]);
    await views.sync("sbx-1", catalog.pick(["beta"]));
    expect(readdirSync(dir)).toEqual(["beta"]);

    // A changed skill (a new digest after a restart) is copied again.
    await views.sync("sbx-1", catalog.pick(["alpha"]));
    writeFileSync(join(project, "skills", "alpha", "ref", "a.md"), "A2");
    catalog = new SkillCatalog(parseConfig(""), join(project, "lobu.toml"));
    await views.sync("sbx-1", catalog.pick(["alpha"]));
    expect(readFileSync(join(dir, "alpha", "ref", "a.md"), "utf8")).toBe("A2");

    // Sandboxes do not see each other's skills; nothing is left half-copied.
    await views.sync("sbx-2", []);
    expect(readdirSync(views.ensure("sbx-2"))).toEqual([]);
    expect(readdirSync(join(views.root, ".staging"))).toEqual([]);
  });

  it("makes the folder again after the sandbox's erasure, even for the same skills", async () => {
    const views = new SkillViews(join(temp(), "skill-views"));
    const catalog = catalogWith(temp());
    await views.sync("sbx-3", catalog.pick(["alpha"]));
    // Unchanged: nothing to do (the folder is this process's own to write).
    await views.sync("sbx-3", catalog.pick(["alpha"]));
    views.remove("sbx-3");
    expect(existsSync(join(views.root, "sbx-3"))).toBe(false);
    await views.sync("sbx-3", catalog.pick(["alpha"]));
    expect(readFileSync(join(views.root, "sbx-3", "alpha", "ref", "a.md"), "utf8")).toBe("A1");
  });

  it("refuses a sandbox id that could leave its folder", () => {
    const views = new SkillViews(join(temp(), "skill-views"));
    expect(() => views.ensure("../x")).toThrow(/invalid sandbox id/);
    expect(existsSync(join(views.root, "..", "x"))).toBe(false);
  });
});

describe("a skill whose folder went away", () => {
  it("leaves its files out and says so, without failing the others", async () => {
    const project = temp();
    const catalog = catalogWith(project);
    const failed: string[] = [];
    const views = new SkillViews(join(temp(), "skill-views"), {
      onCopyFailed: (skill) => failed.push(skill),
    });
    rmSync(join(project, "skills", "alpha"), { recursive: true });
    await views.sync("sbx-1", catalog.pick(["alpha", "beta"]));
    expect(failed).toEqual(["alpha"]);
    expect(readdirSync(views.ensure("sbx-1"))).toEqual(["beta"]);
  });
});
