import { type LobuConfig, LobuError } from "@lobu/core";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { SkillCatalog } from "../skills/catalog.ts";

/** What an agent names that must exist elsewhere: its provider and its skills. */
export function agentReferenceProblems(
  agent: { provider?: string; skills?: string[] },
  providers: ProviderRegistry,
  skills: SkillCatalog,
): string[] {
  const problems: string[] = [];
  if (agent.provider && !providers.get(agent.provider)) {
    problems.push(
      `provider "${agent.provider}" is not defined (known: ${providers
        .list()
        .map((p) => p.id)
        .join(", ")}; add others under [providers.<id>])`,
    );
  }
  for (const name of agent.skills ?? []) {
    if (!skills.get(name)) problems.push(`skill "${name}" is not defined under [skills.*]`);
  }
  return problems;
}

/** Refuse to start on a lobu.toml whose agents or skills name things that do not exist. */
export function checkConfigReferences(
  config: LobuConfig,
  providers: ProviderRegistry,
  skills: SkillCatalog,
  file = "lobu.toml",
): void {
  const lines: string[] = [];
  for (const [id, agent] of Object.entries(config.agents)) {
    for (const p of agentReferenceProblems(agent, providers, skills))
      lines.push(`${file}: agents.${id}: ${p}`);
  }
  for (const [name, skill] of Object.entries(config.skills)) {
    for (const mcp of skill.mcp) {
      if (!config.mcp[mcp])
        lines.push(`${file}: skills.${name}.mcp: MCP server "${mcp}" is not defined under [mcp.*]`);
    }
  }
  if (lines.length) {
    throw new LobuError("config_invalid", lines.join("\n"), {
      hint: "See docs/configuration.md for every key and its type.",
    });
  }
}

/** The same check for agents created or changed through the API (400 with every problem). */
export function checkAgentInput(
  agent: { provider?: string; skills?: string[] },
  providers: ProviderRegistry,
  skills: SkillCatalog,
): void {
  const problems = agentReferenceProblems(agent, providers, skills);
  if (problems.length) {
    throw new LobuError("invalid_request", problems.join("; "), { details: { problems } });
  }
}
