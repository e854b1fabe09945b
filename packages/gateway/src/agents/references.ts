import { type LobuConfig, LobuError } from "@lobu/core";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { SkillCatalog } from "../skills/catalog.ts";
import { unmetNeeds } from "../skills/needs.ts";
import {
  agentPatternProblems,
  configPatternReport,
  skillPatternReport,
} from "./network-patterns.ts";

/** What an agent names that must exist elsewhere: its provider and its skills. */
export function agentReferenceProblems(
  agent: { provider?: string; skills?: string[]; fallback?: string[] },
  providers: ProviderRegistry,
  skills: SkillCatalog,
): string[] {
  const problems: string[] = [];
  const primary = agent.provider ? providers.get(agent.provider) : undefined;
  for (const entry of agent.fallback ?? []) {
    const id = entry.slice(0, entry.indexOf("/"));
    const fallback = providers.get(id);
    if (!fallback) {
      problems.push(`fallback "${entry}": provider "${id}" is not defined`);
    } else if (primary && fallback.type !== primary.type) {
      // The relay forwards the worker's request as it is: only the same API can take it.
      problems.push(
        `fallback "${entry}": ${id} speaks the ${fallback.type} API and ${primary.id} the ${primary.type} one; a fallback must speak the agent's (docs/providers.md#failover)`,
      );
    }
  }
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

/**
 * Refuse to start on a lobu.toml whose agents or skills name things that do not
 * exist, or whose domain patterns name public suffixes it did not opt into.
 * Returns warnings to log (the public suffixes it did opt into).
 */
export function checkConfigReferences(
  config: LobuConfig,
  providers: ProviderRegistry,
  skills: SkillCatalog,
  file = "lobu.toml",
): string[] {
  const patterns = configPatternReport(config, file);
  const fromFolders = skillPatternReport(skills.list(), config);
  const lines: string[] = [...patterns.errors, ...fromFolders.errors];
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
  // A skill folder (installed, or the project's) may name what the operator has not
  // declared yet: it loads, and what it lacks is said here and by `lobu doctor`.
  const unmet = skills
    .list()
    .filter((s) => s.origin !== "config")
    .flatMap((s) =>
      unmetNeeds(s, config).map((n) => `${s.where}.${n.kind}: ${n.problem}; ${n.fix}`),
    );
  // An agent made through the API may be meant: said, not refused.
  const unbound = Object.entries(config.channels).flatMap(([key, c]) =>
    c.agent && !config.agents[c.agent]
      ? [
          `${file}: channels."${key}".agent: "${c.agent}" is not under [agents.*]; messages there are refused until an agent of that id is created through the API`,
        ]
      : [],
  );
  return [...patterns.warnings, ...fromFolders.warnings, ...skills.warnings, ...unmet, ...unbound];
}

/** The same check for agents created or changed through the API (400 with every problem). */
export function checkAgentInput(
  agent: Parameters<typeof agentPatternProblems>[0] & { provider?: string; skills?: string[] },
  providers: ProviderRegistry,
  skills: SkillCatalog,
  /** lobu.toml's `[network] allow_public_suffixes`. */
  publicSuffixOptIns: readonly string[] = [],
): void {
  const problems = [
    ...agentReferenceProblems(agent, providers, skills),
    ...agentPatternProblems(agent, publicSuffixOptIns),
  ];
  if (problems.length) {
    throw new LobuError("invalid_request", problems.join("; "), { details: { problems } });
  }
}
