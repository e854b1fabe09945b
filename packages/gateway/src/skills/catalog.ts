import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { type LobuConfig, LobuError, type SkillSpec } from "@lobu/core";

export interface Skill extends SkillSpec {
  domains: string[];
  packages: string[];
  mcp: string[];
}

/** Strip YAML front matter from a SKILL.md, keeping its description if present. */
function parseSkillFile(text: string): { description?: string; body: string } {
  const m = /^---\n([\s\S]*?)\n---\n?/.exec(text);
  if (!m) return { body: text };
  const description = /^description:\s*(.+)$/m
    .exec(m[1]!)?.[1]
    ?.trim()
    .replace(/^["']|["']$/g, "");
  return { description, body: text.slice(m[0].length) };
}

/**
 * Skills declared in lobu.toml: instructions (inline or a SKILL.md file) plus
 * what they need (domains, Nix packages, MCP servers). Tool visibility and
 * approvals stay in the agent policy, not here.
 */
export class SkillCatalog {
  private readonly skills = new Map<string, Skill>();

  constructor(config: LobuConfig, configPath?: string) {
    const base = configPath ? dirname(configPath) : process.cwd();
    for (const [name, s] of Object.entries(config.skills)) {
      let instructions = s.instructions;
      let description = s.description;
      if (s.path) {
        const file = isAbsolute(s.path) ? s.path : resolve(base, s.path);
        let text: string;
        try {
          text = readFileSync(file, "utf8");
        } catch (err) {
          throw new LobuError(
            "config_invalid",
            `skills.${name}.path: cannot read ${file}: ${(err as Error).message}`,
          );
        }
        const parsed = parseSkillFile(text);
        instructions = parsed.body;
        description ||= parsed.description ?? "";
      }
      this.skills.set(name, {
        name,
        description,
        instructions,
        domains: s.domains,
        packages: s.packages,
        mcp: s.mcp,
      });
    }
  }

  list(): Skill[] {
    return [...this.skills.values()];
  }

  get(name: string): Skill | undefined {
    return this.skills.get(name);
  }

  /** Known skills among `names`, in order, without duplicates. */
  pick(names: string[]): Skill[] {
    return [...new Set(names)].flatMap((n) => (this.skills.has(n) ? [this.skills.get(n)!] : []));
  }
}
