import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach } from "vitest";

/** Temporary folders for one test file, removed after each test. */
export function tempDirs(): (prefix?: string) => string {
  const made: string[] = [];
  afterEach(() => {
    for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return (prefix = "lobu-skills-") => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
}

/** A SKILL.md's text. */
export function skillMd(
  name: string,
  opts: { description?: string; metadata?: Record<string, string>; body?: string } = {},
): string {
  const meta = Object.entries(opts.metadata ?? {});
  return [
    "---",
    `name: ${name}`,
    `description: ${opts.description ?? `The ${name} skill. Use it for ${name} things.`}`,
    ...(meta.length ? ["metadata:", ...meta.map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`)] : []),
    "---",
    opts.body ?? `# ${name}\n\nInstructions of ${name}.`,
    "",
  ].join("\n");
}

/** Write a skill folder: `<dir>/SKILL.md` plus `files` (relative path → content; `+x` in the name marks it executable). */
export function writeSkill(
  dir: string,
  name: string,
  opts: Parameters<typeof skillMd>[1] & { files?: Record<string, string> } = {},
): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "SKILL.md"), skillMd(name, opts));
  for (const [rel, content] of Object.entries(opts.files ?? {})) {
    const executable = rel.endsWith("+x");
    const path = join(dir, executable ? rel.slice(0, -2) : rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    if (executable) chmodSync(path, 0o755);
  }
  return dir;
}
