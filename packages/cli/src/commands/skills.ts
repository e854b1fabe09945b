import { dirname, relative, resolve } from "node:path";
import { type LobuConfig, loadConfig } from "@lobu/core";
import {
  addSkill,
  checkNeeds,
  describeSource,
  LOCK_FILE,
  type NeedCheck,
  PROJECT_SKILLS_DIR,
  removeSkill,
  restoreSkills,
  type Skill,
  SkillCatalog,
  type SourceKind,
} from "@lobu/gateway";

/**
 * `lobu skills add | list | remove | restore`: the project's skills. The
 * project is the folder of lobu.toml (`--config`), else the current one;
 * skills live in its `skills/` folder, installed ones recorded in
 * skills-lock.json. A running gateway loads changes when it restarts.
 */

export interface ProjectOptions {
  config?: string;
}

function project(opts: ProjectOptions): { dir: string; config: LobuConfig; path?: string } {
  const { config, path } = loadConfig(opts.config);
  return { dir: path ? dirname(path) : process.cwd(), config, ...(path ? { path } : {}) };
}

const rel = (dir: string, path: string) => relative(dir, path) || ".";
const out = (line = "") => process.stdout.write(`${line}\n`);

export async function skillsAddCommand(
  source: string,
  opts: ProjectOptions & {
    path?: string;
    ref?: string;
    git?: boolean;
    npm?: boolean;
    local?: boolean;
    force?: boolean;
  },
): Promise<number> {
  const p = project(opts);
  const kind: SourceKind | undefined = opts.git
    ? "git"
    : opts.npm
      ? "npm"
      : opts.local
        ? "path"
        : undefined;
  const result = await addSkill({
    spec: source,
    ...(kind ? { kind } : {}),
    ...(opts.ref ? { ref: opts.ref } : {}),
    ...(opts.path ? { path: opts.path } : {}),
    projectDir: p.dir,
    config: p.config,
    ...(opts.force ? { force: true } : {}),
  });
  const verb = { installed: "installed", updated: "updated", unchanged: "already installed" }[
    result.status
  ];
  out(
    `${verb} ${result.name} in ${rel(process.cwd(), result.dir)} (${describeSource(result.entry.source)})`,
  );
  out(`  ${result.manifest.description}`);
  if (result.skipped.length)
    out(`  left out (links or special files): ${result.skipped.join(", ")}`);
  const needs = checkNeeds({ name: result.name, ...result.manifest.needs }, p.config);
  printNeeds(needs, "  ");
  out();
  out(
    `Give it to an agent with \`skills = ["${result.name}"]\` in [agents.<id>] of lobu.toml, or let people install it from their settings page; restart \`lobu run\` to load it.`,
  );
  return 0;
}

export function skillsRemoveCommand(name: string, opts: ProjectOptions): number {
  const p = project(opts);
  const result = removeSkill({ projectDir: p.dir, name, config: p.config });
  out(
    `removed ${name}${result.removedFolder ? ` (${PROJECT_SKILLS_DIR}/${name}/)` : ""}${result.hadLockEntry ? ` and its ${LOCK_FILE} entry` : ""}`,
  );
  if (result.stillUsedBy.length)
    out(
      `  lobu.toml still gives it to ${result.stillUsedBy.map((a) => `agents.${a}`).join(", ")}: take "${name}" out of their skills, or the gateway will not start`,
    );
  return 0;
}

export async function skillsRestoreCommand(opts: ProjectOptions): Promise<number> {
  const p = project(opts);
  const { restored, present } = await restoreSkills({ projectDir: p.dir, config: p.config });
  for (const name of restored) out(`restored ${name}`);
  out(
    `${restored.length} restored, ${present.length} already present (${LOCK_FILE} in ${rel(process.cwd(), p.dir)})`,
  );
  return 0;
}

function originLabel(skill: Skill, dir: string): string {
  if (skill.origin === "config") return `lobu.toml [skills.${skill.name}]`;
  const where = rel(dir, skill.dir ?? "");
  return skill.lock
    ? `${where} ← ${describeSource(skill.lock.source)}`
    : `${where} (the project's own)`;
}

const MARK = { ok: "✓", warn: "!", fail: "✗" };

function printNeeds(needs: NeedCheck[], indent: string): void {
  if (needs.length === 0) {
    out(`${indent}needs nothing beyond its instructions`);
    return;
  }
  out(`${indent}needs:`);
  for (const n of needs) {
    const mark = n.ok ? (n.note?.includes("deny") ? MARK.warn : MARK.ok) : MARK.fail;
    const detail = n.ok
      ? n.note
        ? ` (${n.note})`
        : ""
      : `: ${n.problem}\n${indent}    fix: ${n.fix}`;
    out(`${indent}  ${mark} ${n.kind.replace(/s$/, "")} ${n.value}${detail}`);
  }
}

export function skillsListCommand(opts: ProjectOptions & { json?: boolean }): number {
  const p = project(opts);
  const catalog = new SkillCatalog(p.config, p.path, { projectDir: p.dir });
  const skills = catalog.list();
  if (opts.json) {
    out(
      JSON.stringify(
        {
          projectDir: p.dir,
          skills: skills.map((s) => ({
            name: s.name,
            description: s.description,
            origin: s.origin,
            ...(s.dir ? { dir: s.dir } : {}),
            ...(s.lock ? { source: s.lock.source, digest: s.lock.digest } : {}),
            usedBy: Object.entries(p.config.agents)
              .filter(([, a]) => a.skills.includes(s.name))
              .map(([id]) => id),
            needs: checkNeeds(s, p.config),
          })),
          warnings: catalog.warnings,
        },
        null,
        2,
      ),
    );
    return 0;
  }
  if (skills.length === 0) {
    out(
      `No skills in ${resolve(p.dir, PROJECT_SKILLS_DIR)} or lobu.toml. Add one: \`lobu skills add lobu\` (the starter skill that explains Lobu to the agent).`,
    );
    return 0;
  }
  for (const s of skills) {
    const users = Object.entries(p.config.agents)
      .filter(([, a]) => a.skills.includes(s.name))
      .map(([id]) => id);
    out(`${s.name}  ${originLabel(s, p.dir)}`);
    if (s.description) out(`  ${s.description}`);
    out(
      `  ${users.length ? `given to agents: ${users.join(", ")}` : "not given to an agent in lobu.toml (people can install it from their settings page)"}`,
    );
    printNeeds(checkNeeds(s, p.config), "  ");
  }
  for (const w of catalog.warnings) out(`! ${w}`);
  return 0;
}
